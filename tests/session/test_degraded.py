"""Degraded mode (a stock kernel: no variable BTF): the declarations table
of :mod:`drgn_btfvars.decls` against the DWARF truth, and what drgn's
helpers and crash commands can still do with it.

Every entry that this kernel's BTF can type must give the type and the
address DWARF gives; an entry that cannot be checked against the truth
fails too. Then the helpers and commands of ``test_parity`` run in this
mode: each one must print what DWARF prints, or fail (or stop early), but
never print something DWARF contradicts.
"""

from collections import Counter
from typing import Dict, List

from drgn_btfvars import decls
from vmcores import commands

from .conftest import BtfSession
from .test_parity import compare as parity_compare


def test_declarations_match_dwarf(degraded_session: BtfSession, vmcore_truth, vmcore_key,
                                  record_property) -> None:
    """Every declaration this kernel's BTF can type is DWARF's type at
    DWARF's address."""
    res = decls.check_against_truth(degraded_session.kb, vmcore_truth["variables"])
    line = (f"{vmcore_key} declarations: {len(res['matched'])} match DWARF, "
            f"{len(res['skipped'])} skipped, {len(res['absent'])} not in this kernel, "
            f"{len(res['mismatched'])} mismatched, {len(res['unverifiable'])} unverifiable "
            f"(of {len({d.name for d in decls.DECLARATIONS})} names)")
    print("\n" + line)
    for name, why in res["skipped"]:
        print(f"  skipped {name}: {why}")
    for name, t in res["absent"]:
        print(f"  not in this kernel: {name} ({t})")
    record_property("declarations", line)
    assert not res["mismatched"], res["mismatched"]
    assert not res["unverifiable"], res["unverifiable"]
    assert res["matched"]


def test_a_wrong_declaration_fails(degraded_session: BtfSession, vmcore_truth) -> None:
    """The check above catches a wrong type, a wrong enumerator length and
    a constness difference (the table's own test must be able to fail)."""
    wrong = (
        decls.Declaration("init_task", "struct mm_struct", "test"),
        decls.Declaration("vm_zone_stat", "atomic_long_t [NR_VM_NODE_STAT_ITEMS]", "test"),
        decls.Declaration("init_uts_ns", "const struct uts_namespace", "test"),
        decls.Declaration("jiffies_64", "struct no_such_struct_in_btf", "test"),
    )
    res = decls.check_against_truth(degraded_session.kb, vmcore_truth["variables"], wrong)
    assert sorted(n for n, _ in res["mismatched"]) == ["init_task", "init_uts_ns", "vm_zone_stat"]
    assert [n for n, _ in res["skipped"]] == ["jiffies_64"]


def test_version_ranges(degraded_session: BtfSession) -> None:
    """Entries outside their version range, or for another architecture, or
    on a kernel older than the table, are skipped with the reason."""
    kb = degraded_session.kb
    version = decls.kernel_version(kb.vmcoreinfo()["OSRELEASE"])
    assert version is not None
    table = (
        decls.Declaration("init_task", "struct task_struct", "test", since=(version[0] + 1, 0)),
        decls.Declaration("init_pid_ns", "struct pid_namespace", "test", until=version),
        decls.Declaration("init_uts_ns", "struct uts_namespace", "test", arch="NO_SUCH_ARCH"),
    )
    d = decls.Declarations(kb, table)
    for name in ("init_task", "init_pid_ns", "init_uts_ns"):
        r = d.resolve(name)
        assert r is not None and r.type is None and r.skipped, name
        assert d.object(name) is None
    d._version = (5, 15)
    d._resolved.clear()
    assert "older than" in d.resolve("init_task").skipped  # type: ignore[union-attr]


def test_degraded_session(degraded_session: BtfSession, recorded, vmcore_key,
                          record_property) -> None:
    """Helpers and crash commands on a stock kernel: how many print exactly
    what DWARF prints; none prints something DWARF contradicts."""
    prog = degraded_session.prog
    by_status: Dict[str, List[str]] = {}
    helpers = Counter()
    crash = Counter()
    for name in commands.names():
        want = recorded["outputs"].get(name)
        if want is None:
            continue
        c = parity_compare(vmcore_key, name, want, commands.run(prog, name), prog)
        by_status.setdefault(c.status, []).append(name)
        ok = c.status in ("same", "normalised")
        (helpers if name.startswith("helper:") else crash)[ok] += 1
    line = (f"{vmcore_key} stock kernel (no variable BTF): helpers {helpers[True]}/"
            f"{sum(helpers.values())}, crash commands {crash[True]}/{sum(crash.values())} "
            "print what DWARF prints")
    print("\n" + line)
    for status in ("partial", "error", "different"):
        if by_status.get(status):
            print(f"  {status}: {', '.join(by_status[status])}")
    record_property("degraded mode", line)
    assert not by_status.get("different"), by_status.get("different")
    assert helpers[True] + crash[True] > 0
