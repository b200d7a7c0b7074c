"""drgn's helpers and crash commands print the same with BTF as with DWARF.

The DWARF outputs were recorded on each committed dump by
``python3 vmcores/commands.py record`` (drgn + the ``-dbg`` vmlinux); here
the same list runs with BTF only and each output is compared, after the
normalisations documented in :func:`vmcores.commands.compare` (file paths
in ``sys``; DWARF's inline frames; kallsyms labels and module symbol names
where DWARF has a function name or a bare address). Any other difference
fails.
"""

from collections import Counter

import pytest

from vmcores import commands

from .conftest import BtfSession


@pytest.mark.parametrize("name", commands.names())
def test_same_as_dwarf(btf_session: BtfSession, recorded, vmcore_key, name) -> None:
    want = recorded["outputs"].get(name)
    if want is None:
        pytest.skip(f"{name} not recorded for {vmcore_key} (record again)")
    assert not want.startswith(commands.ERROR_PREFIX), f"DWARF itself failed: {want}"
    got = commands.run(btf_session.prog, name)
    c = commands.compare(name, want, got, btf_session.prog)
    assert c.status in ("same", "normalised"), "\n".join([c.status] + c.diff[:60])


def test_summary(btf_session: BtfSession, recorded, vmcore_key, record_property) -> None:
    """One line per kernel: how each output compared (``pytest -s``)."""
    statuses = Counter()
    rules = Counter()
    for name in commands.names():
        want = recorded["outputs"].get(name)
        if want is None:
            continue
        c = commands.compare(name, want, commands.run(btf_session.prog, name), btf_session.prog)
        statuses[c.status] += 1
        rules.update(c.rules)
    line = (f"{vmcore_key} parity with DWARF ({sum(statuses.values())} outputs): "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + "; normalised: " + (", ".join(f"{k} ×{v}" for k, v in sorted(rules.items())) or "none"))
    print("\n" + line)
    record_property("parity", line)
    assert statuses["same"] + statuses["normalised"] == sum(statuses.values()), line
