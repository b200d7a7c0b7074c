"""A process that used the accelerated name index exits cleanly.

Before, the index kept C pointers into memoryviews; at interpreter exit the
garbage collector clears memoryviews caught in reference cycles even while
such a pointer is held ("BufferError: memoryview has 1 exported buffer"),
and the process then crashed (SIGSEGV)."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_cli_exits_cleanly(vmcore_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # A name not found searches every module's index: with the old index
    # this crashed at exit every time.
    for names, rc in ((["no_such_name_x"], 1), (["init_task"], 0)):
        p = subprocess.run([sys.executable, "-m", "drgn_btfvars.cli", "dump", "-c",
                            str(vmcore_path), *names],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == rc, (p.returncode, p.stderr[-2000:])
        assert "BufferError" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
