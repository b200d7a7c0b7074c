"""Broken dumps: corrupt, truncated, cyclic, oversized and missing BTF, another
build's variable BTF, and pages left out as ``makedumpfile -d 31`` leaves
them out. Each test breaks a scratch copy of a committed dump (tests/hostile/
dumps.py), opens it with BTF only, and checks the message and that the rest
of the session goes on, against the DWARF truth of the untouched dump."""

import struct
from typing import Dict, List

import drgn
import pytest

from drgn_btfvars.btf import Btf, BtfError, BtfKind

from .dumps import (Located, ScratchDump, dwarf_pcs, kernel_pcs, open_session, pages_of,
                    record_word)


# A type each module's BTF defines and neither vmlinux nor another module does.
MODULE_TYPES = {"loop": "struct loop_device", "jbd2": "struct jbd2_journal_block_tail",
                "ext4": "struct ext4_sb_info"}


def truth_var(truth, name: str) -> Dict:
    return next(v for v in truth["variables"] if v["name"] == name)


def outcome(fn):
    try:
        return fn()
    except Exception as e:  # what a user would see
        return e


def check_rest_works(prog: drgn.Program, truth, skip_modules: List[str] = ()) -> None:
    """What a session needs keeps working: a vmlinux type, a typed global at
    DWARF's address with DWARF's type, a stack trace with DWARF's PCs, and the
    types of the modules that were not broken."""
    assert prog.type("struct task_struct").size > 1000
    j = prog["jiffies"]
    want = truth_var(truth, "jiffies")
    assert (j.address_, j.type_.type_name(), j.value_()) == \
        (want["address"], want["type"], want["value"])
    assert prog["init_task"].comm.string_() == b"swapper/0"
    assert kernel_pcs(prog, 1) == dwarf_pcs(truth, 1)
    for mod, type_name in MODULE_TYPES.items():
        if mod not in skip_modules:
            assert drgn.sizeof(prog.type(type_name)) > 0, type_name


# -- module BTF ---------------------------------------------------------------


def test_module_btf_bad_header(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    pieces, _, _ = located.modules["ext4"]
    scratch.write_virtual(pieces, 0, b"\x00\x00")  # the magic
    prog, kb = open_session(scratch.path)
    check_rest_works(prog, vmcore_truth, skip_modules=["ext4"])
    with pytest.raises(LookupError):
        prog.type("struct ext4_sb_info")
    assert "module ext4: bad BTF ignored: ext4: bad magic 0x0000 at offset 0" in kb.warnings


def test_module_btf_truncated(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    """btf->data_size cut by 1,000 bytes: the string section runs past the end."""
    _, size_at, data = located.modules["jbd2"]
    scratch.write(scratch.phys_offset(size_at), struct.pack("<I", len(data) - 1000))
    prog, kb = open_session(scratch.path)
    check_rest_works(prog, vmcore_truth, skip_modules=["jbd2"])
    with pytest.raises(LookupError):
        prog.type(MODULE_TYPES["jbd2"])
    assert any(w.startswith("module jbd2: bad BTF ignored: jbd2: string section") and
               "runs past the end" in w for w in kb.warnings), kb.warnings


def test_module_btf_oversized(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    """A btf->data_size of 4 GiB is refused before anything is read."""
    _, size_at, _ = located.modules["mbcache"]
    scratch.write(scratch.phys_offset(size_at), struct.pack("<I", 0xFFFFFFF0))
    prog, kb = open_session(scratch.path)
    check_rest_works(prog, vmcore_truth)
    assert "module mbcache: BTF size 4294967280 is impossible" in kb.warnings


@pytest.mark.parametrize("how", ["out-of-range", "cycle"])
def test_module_btf_bad_record(scratch: ScratchDump, located: Located, vmcore_truth,
                               how: str) -> None:
    """One record of loop's BTF is damaged (a member's type id out of range,
    or the struct containing itself): the type gives a BtfError naming the
    module and the type id, and everything else goes on."""
    pieces, _, data = located.modules["loop"]
    btf = Btf(data, Btf(located.vmlinux_btf_bytes, name="vmlinux"), name="loop")
    ld = btf.find("loop_device", BtfKind.STRUCT)[0]
    bad = 0x7FFFFFFF if how == "out-of-range" else ld
    scratch.write_virtual(pieces, record_word(btf, ld, 3 + 3 * 2 + 1), struct.pack("<I", bad))
    prog, kb = open_session(scratch.path)
    msg = (f"loop: type id {ld}: member type refers to type id 2147483647 out of range"
           if how == "out-of-range" else f"loop: type id {ld}: STRUCT refers to itself")
    with pytest.raises(BtfError, match=msg):
        prog.type("struct loop_device")
    check_rest_works(prog, vmcore_truth, skip_modules=["loop"])
    with pytest.raises(BtfError, match=msg):  # the same answer every time
        prog.type("struct loop_device")


# -- vmlinux BTF ----------------------------------------------------------------


def check_nothing_typed(prog: drgn.Program, truth) -> None:
    """No vmlinux BTF: no type, no typed global, no module type: nothing
    guessed. Symbols and memory still work."""
    for name in ("struct task_struct", "struct ext4_sb_info", "int"):
        if name == "int":
            assert prog.type(name).size == 4  # drgn's own C base types remain
            continue
        with pytest.raises(LookupError):
            prog.type(name)
    for name in ("jiffies", "init_task", "modules"):
        with pytest.raises(LookupError):
            prog[name]
    want = truth_var(truth, "jiffies_64")
    assert prog.symbol("jiffies_64").address == want["address"]
    assert int.from_bytes(prog.read(want["address"], 8), "little") == want["value"] & (2**64 - 1)


def test_vmlinux_btf_bad_header(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    scratch.write_virtual(located.vmlinux_btf, 0, b"\x00\x00")
    prog, kb = open_session(scratch.path)
    check_nothing_typed(prog, vmcore_truth)
    assert kb.warnings[0] == "vmlinux BTF unavailable: vmlinux: bad magic 0x0000 at offset 0"


def _damage_task_struct(scratch: ScratchDump, located: Located) -> int:
    """Point task_struct's second member out of range in the dump's vmlinux
    BTF; return task_struct's type id."""
    vb = Btf(located.vmlinux_btf_bytes, name="vmlinux")
    ts = vb.find("task_struct", BtfKind.STRUCT)[0]
    scratch.write_virtual(located.vmlinux_btf, record_word(vb, ts, 3 + 3 * 1 + 1),
                          struct.pack("<I", 0x7FFFFFFF))
    return ts


def _check_vmlinux_refused(scratch: ScratchDump, vmcore_truth) -> None:
    """A session on the scratch dump types nothing and says the vmlinux BTF is damaged."""
    prog, kb = open_session(scratch.path)
    check_nothing_typed(prog, vmcore_truth)
    build = f"{vmcore_truth['kernel']['release']} (build ID {vmcore_truth['kernel']['build_id']})"
    assert any(w.startswith(f"vmlinux BTF of {build} is damaged") for w in kb.warnings), \
        kb.warnings


def test_vmlinux_btf_damaged_record(scratch: ScratchDump, located: Located, vmcore_truth,
                                    vmcore_key) -> None:
    """A record of the vmlinux BTF is damaged (task_struct's second member
    points out of range). With the variable BTF, which records the SHA-256
    of the vmlinux BTF of its build, the damage is seen at once: the vmlinux
    BTF is refused and nothing is typed. Without it (stock mode), the
    damaged type alone gives a BtfError naming it."""
    from vmcores import fixtures

    if not fixtures.fake_module_loaded(vmcore_key):
        pytest.skip("needs the fake module in the dump")
    ts = _damage_task_struct(scratch, located)
    _check_vmlinux_refused(scratch, vmcore_truth)

    prog, kb = open_session(scratch.path, use_fake_module=False)
    with pytest.raises(BtfError, match=f"vmlinux: type id {ts}: member type refers to type id "
                                       "2147483647 out of range"):
        prog.type("struct task_struct")
    assert prog.type("struct list_head").size == 16
    assert prog.type("struct ext4_sb_info").size > 0


def test_vmlinux_btf_damage_seen_with_a_warm_cache(scratch: ScratchDump, located: Located,
                                                    vmcore_truth, vmcore_key, monkeypatch,
                                                    tmp_path) -> None:
    """A warm session takes the SHA-256 prefix of the vmlinux BTF from the
    per-build cache when the bytes have the recorded length and CRC-32: a
    damaged copy (other bytes) is hashed again, and refused as with no cache."""
    import zlib

    from drgn_btfvars.bootstrap import BootstrapCache
    from vmcores import fixtures

    if not fixtures.fake_module_loaded(vmcore_key):
        pytest.skip("needs the fake module in the dump")
    monkeypatch.delenv("DRGN_BTFVARS_NO_CACHE")
    monkeypatch.setenv("DRGN_BTFVARS_CACHE", str(tmp_path))
    prog, kb = open_session(scratch.path)  # intact: the cache gets the digest
    assert prog["init_task"].comm.string_() == b"swapper/0" and not kb.warnings
    info = vmcore_truth["kernel"]
    cache = BootstrapCache(info["build_id"], info["kaslr_offset"])
    data = located.vmlinux_btf_bytes
    assert cache.base_digest(len(data), zlib.crc32(data)) is not None
    prog, kb = open_session(scratch.path)  # warm, intact: no warning
    assert prog["init_task"].comm.string_() == b"swapper/0" and not kb.warnings

    _damage_task_struct(scratch, located)
    _check_vmlinux_refused(scratch, vmcore_truth)


# -- the variable BTF ---------------------------------------------------------------


def test_variable_btf_bad_header(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    """The fake module's BTF is corrupt: not used (as on a stock kernel),
    said once, and no global gets a type DWARF contradicts."""
    pieces, _, _ = located.modules["btf_global_variables"]
    scratch.write_virtual(pieces, 0, b"\x00\x00")
    prog, kb = open_session(scratch.path)
    assert prog.type("struct task_struct").size > 1000
    assert kb.vars() is None
    assert ("variable BTF from module btf_global_variables not used: btf_global_variables: "
            "bad magic 0x0000 at offset 0") in kb.warnings
    from drgn_btfvars.decls import strip_outer_length

    typed = 0
    for v in vmcore_truth["variables"][::20]:
        got = outcome(lambda: prog[v["name"]])
        if isinstance(got, drgn.Object):
            # Stock mode's declarations may leave out an array's length (as
            # the kernel's extern declarations do); DWARF has the definition.
            name = got.type_.type_name()
            want = strip_outer_length(v["type"]) if name.endswith("[]") else v["type"]
            assert (got.address_, name) == (v["address"], want), v
            typed += 1
        else:
            assert isinstance(got, LookupError), (v, got)
    assert typed > 0  # per-CPU variables, from the vmlinux BTF


def test_foreign_variable_btf_in_dump(scratch: ScratchDump, located: Located, vmcore_truth,
                                      vmcore_key) -> None:
    """The fake module in the dump carries another build's variable BTF
    (written over its own, with btf->data_size set): refused, naming both
    builds; never used."""
    from vmcores import fixtures

    pieces, size_at, data = located.modules["btf_global_variables"]
    others = [k for k in fixtures.KEYS if k != vmcore_key and fixtures.vars_btf_file(k)
              and len(fixtures.vars_btf(k)) <= len(data)]
    if not others:
        pytest.skip(f"no other build's variable BTF fits in {vmcore_key}'s buffer")
    other = others[0]
    foreign = fixtures.vars_btf(other)
    scratch.write_virtual(pieces, 0, foreign)
    scratch.write(scratch.phys_offset(size_at), struct.pack("<I", len(foreign)))
    prog, kb = open_session(scratch.path)
    assert kb.vars() is None
    msg = " ".join(kb.warnings)
    theirs, ours = fixtures.truth(other)["kernel"], vmcore_truth["kernel"]
    assert "refused" in msg, msg
    for k in (theirs, ours):
        assert k["release"] in msg and k["build_id"] in msg, (k["release"], msg)
    assert prog.type("struct task_struct").size > 1000


# -- pages left out -------------------------------------------------------------------


def test_missing_page_faults_that_object(scratch: ScratchDump, located: Located,
                                         vmcore_truth) -> None:
    """The page holding jiffies_64 is not in the dump: reading it raises
    drgn's FaultError; its type and address are still known; everything
    else goes on."""
    scratch.exclude_phys(pages_of(located.jiffies_64))
    prog, kb = open_session(scratch.path)
    j = prog["jiffies_64"]
    assert j.address_ == truth_var(vmcore_truth, "jiffies_64")["address"]
    with pytest.raises(drgn.FaultError):
        j.value_()
    assert prog["init_task"].comm.string_() == b"swapper/0"
    assert kernel_pcs(prog, 1) == dwarf_pcs(vmcore_truth, 1)
    assert prog.type("struct ext4_sb_info").size > 0
    assert not kb.warnings


def test_module_btf_page_missing(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    pieces = located.modules["ext4"][0]
    scratch.exclude_phys(pages_of(pieces[len(pieces) // 2:len(pieces) // 2 + 1]))
    prog, kb = open_session(scratch.path)
    check_rest_works(prog, vmcore_truth, skip_modules=["ext4"])
    with pytest.raises(LookupError):
        prog.type("struct ext4_sb_info")
    assert any(w.startswith("module ext4: BTF cannot be read: ") for w in kb.warnings), \
        kb.warnings


def test_vmlinux_btf_page_missing(scratch: ScratchDump, located: Located, vmcore_truth) -> None:
    pieces = located.vmlinux_btf
    scratch.exclude_phys(pages_of(pieces[len(pieces) // 2:len(pieces) // 2 + 1]))
    prog, kb = open_session(scratch.path)
    check_nothing_typed(prog, vmcore_truth)
    size = len(located.vmlinux_btf_bytes)
    assert kb.warnings[0].startswith(f"vmlinux BTF unavailable: vmlinux BTF ({size} bytes at "
                                     f"{located.vmlinux_btf[0][0]:#x}) cannot be read in full"), \
        kb.warnings
