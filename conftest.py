"""Shared pytest configuration for drgn-btfvars.

The plugin's automatic loading (entry point ``drgn.plugins``) is disabled in
the test process so that each test wires programs up explicitly with
``drgn_btfvars.enable()``; the entry-point test runs drgn in a subprocess
without this variable.
"""

import os

os.environ["DRGN_BTFVARS_DISABLE"] = "1"
