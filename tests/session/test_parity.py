"""drgn's helpers and crash commands print the same with BTF as with DWARF.

The DWARF outputs were recorded on each committed dump by
``python3 vmcores/commands.py record`` (drgn + the ``-dbg`` vmlinux); here
the same list runs with BTF only and each output is compared, after the
normalisations documented in :func:`vmcores.commands.compare` (file paths
in ``sys``; DWARF's inline frames; kallsyms labels, GCC clone names and
module symbol names where DWARF has a function name or a bare address;
stack pointers that frame-pointer unwinding cannot give). Any other
difference fails, except those listed in :data:`KNOWN_DIFFERENCES`.
"""

import re
from collections import Counter
from typing import Any

import pytest

from vmcores import commands

from .conftest import BtfSession

#: Differences that are known and explained: (kernel, output) → (why, the
#: function whose DWARF frames BTF does not have). The test checks that the
#: outputs differ exactly so: without those frames they must compare equal,
#: and with them they must differ (so that a fix in drgn is noticed).
KNOWN_DIFFERENCES = {
    ("trixie-arm64", "crash:foreach bt"): (
        "arm64 has no ORC: without DWARF's call frame information drgn unwinds "
        "through frame pointers, and misses arch_cpu_idle, the caller of the leaf "
        "cpu_do_idle, whose return address is only in the link register (the two "
        "idle tasks)", "arch_cpu_idle"),
}


def _drop_frames(text: str, function: str) -> str:
    pattern = re.compile(r"^\s*#\s*\d+ \[[^\]]*\] " + re.escape(function) + " at ")
    return "\n".join(line for line in text.split("\n") if not pattern.match(line))


def compare(key: str, name: str, want: str, got: str, prog: Any) -> "commands.Comparison":
    """:func:`commands.compare`, with the known differences taken out (and
    checked to be there)."""
    known = KNOWN_DIFFERENCES.get((key, name))
    if known is None:
        return commands.compare(name, want, got, prog)
    raw = commands.compare(name, want, got, prog)
    assert raw.status == "different", f"known difference gone ({known[0]}): update the table"
    c = commands.compare(name, _drop_frames(want, known[1]), got, prog)
    return c._replace(rules={**c.rules, f"known difference: {known[1]} frames": 1})


@pytest.mark.parametrize("name", commands.names())
def test_same_as_dwarf(btf_session: BtfSession, recorded, vmcore_key, name) -> None:
    want = recorded["outputs"].get(name)
    if want is None:
        pytest.skip(f"{name} not recorded for {vmcore_key} (record again)")
    assert not want.startswith(commands.ERROR_PREFIX), f"DWARF itself failed: {want}"
    got = commands.run(btf_session.prog, name)
    c = compare(vmcore_key, name, want, got, btf_session.prog)
    assert c.status in ("same", "normalised"), "\n".join([c.status] + c.diff[:60])


def test_summary(btf_session: BtfSession, recorded, vmcore_key, record_property) -> None:
    """One line per kernel: how each output compared (``pytest -s``)."""
    statuses = Counter()
    rules = Counter()
    for name in commands.names():
        want = recorded["outputs"].get(name)
        if want is None:
            continue
        c = compare(vmcore_key, name, want, commands.run(btf_session.prog, name),
                    btf_session.prog)
        statuses[c.status] += 1
        rules.update(c.rules)
    line = (f"{vmcore_key} parity with DWARF ({sum(statuses.values())} outputs): "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + "; normalised: " + (", ".join(f"{k} ×{v}" for k, v in sorted(rules.items())) or "none"))
    print("\n" + line)
    record_property("parity", line)
    assert statuses["same"] + statuses["normalised"] == sum(statuses.values()), line
