"""The btf_global_variables_meta enum: written, read back, decoded."""

import hashlib

import pytest

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind
from drgn_btfvars.gen.meta import (
    BOOTSTRAP_SYMBOLS, META_ENUM_NAME, META_FORMAT, VmlinuxInfo, decode_meta, meta_enumerators,
)


def _info() -> VmlinuxInfo:
    info = VmlinuxInfo()
    info.build_id = bytes.fromhex("b1d7a9114053a488ef493f85f85e9fc75ba9f632")
    info.release = "6.12.117+deb13-amd64"
    info.sections = [(".data", 0xffffffff82c00000), (".data..percpu", 0),
                     (".bss", 0xffffffff8373c000), (".dup", 1), (".dup", 2)]
    info.symbols = {"_stext": 0xffffffff81000000, "__per_cpu_offset": 0xffffffff82c0a000,
                    "jiffies": 0xffffffff82c05000}
    return info


def _roundtrip(enums):
    base = BtfBuilder()
    base.add_int("int", 4, 1)
    bb = base.to_bytes()
    b = BtfBuilder(Btf(bb))
    b.add_enum64(META_ENUM_NAME, 8, enums, False)
    v = Btf(b.to_bytes(), Btf(bb))
    (tid,) = v.find(META_ENUM_NAME)
    t = v.type(tid)
    assert t.kind == BtfKind.ENUM64 and t.size == 8 and not t.kind_flag
    return [(e.name, e.value) for e in t.enumerators]


def test_meta_roundtrip():
    base_bytes = b"\x9f\xeb" + bytes(100)
    enums = meta_enumerators(base_bytes, _info(), [".data", ".data..percpu", ".bss", ".dup"],
                             ["jiffies"])
    got = _roundtrip(enums)
    assert got == enums
    for name, value in got:
        assert name.isidentifier() and 0 <= value < 2 ** 64
    m = decode_meta(got)
    assert m["format"] == META_FORMAT
    assert m["base_sha256"] == int.from_bytes(hashlib.sha256(base_bytes).digest()[:8], "big")
    assert m["base_len"] == len(base_bytes)
    assert m["build_id"] == "b1d7a9114053a488ef493f85f85e9fc75ba9f632"
    assert m["release"] == "6.12.117+deb13-amd64"
    assert m["secaddr"] == {0: 0xffffffff82c00000, 1: 0, 2: 0xffffffff8373c000, 3: 1}
    assert m["secname"] == {3: ".dup"}
    assert m["sym"] == {"_stext": 0xffffffff81000000, "__per_cpu_offset": 0xffffffff82c0a000,
                        "jiffies": 0xffffffff82c05000}


def test_meta_missing_section():
    with pytest.raises(LookupError):
        meta_enumerators(b"x", _info(), [".nosuch"])


def test_meta_read_by_plugin_reader():
    """The plugin side (drgn_btfvars.meta) reads what the generator writes."""
    plugin_meta = pytest.importorskip("drgn_btfvars.meta")
    base = BtfBuilder()
    base.add_int("int", 4, 1)
    bb = base.to_bytes()
    b = BtfBuilder(Btf(bb))
    b.add_enum64(META_ENUM_NAME, 8, meta_enumerators(bb, _info(), [".data"]), False)
    m = plugin_meta.VarsMeta.from_btf(Btf(b.to_bytes(), Btf(bb)))
    assert m.base_len == len(bb)
    assert m.build_id == "b1d7a9114053a488ef493f85f85e9fc75ba9f632"
    assert m.release == "6.12.117+deb13-amd64"
    assert m.section_addresses == {0: 0xffffffff82c00000}
    assert m.symbols["_stext"] == 0xffffffff81000000


def test_bootstrap_symbols_listed():
    assert {"_stext", "_end", "__start_BTF", "__stop_BTF", "btf_modules", "modules",
            "__per_cpu_offset", "__per_cpu_start", "__per_cpu_end", "_text"} <= set(
                BOOTSTRAP_SYMBOLS)
