"""drgn_btfvars.load_btf(): adding a variable BTF or another split BTF to a
session by hand (scripts, notebooks)."""

from pathlib import Path

import pytest

import drgn_btfvars
from drgn_btfvars.btf import BtfError
from drgn_btfvars.finders import BtfVarsError

from vmcores.fixtures import manifest

from .conftest import open_btf, other_key_with_vars, vars_btf_bytes


def _untyped_global(session, truth) -> dict:
    """A global the stock session cannot type (no degraded-mode declaration)."""
    for v in truth["variables"]:
        if not v["name"].startswith("_") and not session.kb.variables(v["name"]):
            try:
                session.prog.variable(v["name"])
            except LookupError:
                return v
    pytest.fail("every global is typed without a variable BTF")


def test_load_variable_btf_into_stock_session(vmcore_key, vmcore_path: Path, vmcore_truth,
                                              tmp_path: Path) -> None:
    data = vars_btf_bytes(vmcore_key)
    if data is None:
        pytest.skip(f"{vmcore_key}: no committed variable BTF")
    s = open_btf(vmcore_path, use_fake_module=False)
    v = _untyped_global(s, vmcore_truth)
    f = tmp_path / "vars.btf"
    f.write_bytes(data)
    btf = drgn_btfvars.load_btf(s.prog, f)
    assert s.kb.vars() is btf
    obj = s.prog.variable(v["name"])
    assert obj.address_ == v["address"]
    assert obj.type_.type_name() == v["type"]
    with pytest.raises(BtfVarsError, match="already in use"):
        drgn_btfvars.load_btf(s.prog, data)


def test_load_other_builds_variable_btf_is_refused(vmcore_key, vmcore_path: Path) -> None:
    other = other_key_with_vars(vmcore_key)
    if other is None:
        pytest.skip("needs a committed variable BTF of another kernel")
    s = open_btf(vmcore_path, use_fake_module=False)
    with pytest.raises(BtfVarsError, match="refused") as e:
        drgn_btfvars.load_btf(s.prog, vars_btf_bytes(other), name=f"{other} variables")
    # Both builds are named: theirs and this kernel's.
    ours = s.kb.vmcoreinfo()["OSRELEASE"]
    theirs = manifest(other)["release"]
    assert f"generated for {theirs}" in str(e.value) and f"this kernel is {ours}" in str(e.value)
    assert s.kb.vars() is None


def test_load_module_btf_of_another_build_is_refused(vmcore_key, vmcore_path: Path) -> None:
    """A module BTF made on another kernel's base parses, with garbage names:
    check_base() must catch it."""
    other = other_key_with_vars(vmcore_key)
    if other is None:
        pytest.skip("needs another committed kernel")
    from vmcores import fixtures
    import zstandard

    raw = zstandard.ZstdDecompressor().decompressobj().decompress(
        (fixtures.ROOT / other / "btf" / "ext4.btf.zst").read_bytes())
    s = open_btf(vmcore_path)
    with pytest.raises(BtfError):
        drgn_btfvars.load_btf(s.prog, raw, name=f"{other} ext4")
    assert not s.kb._added_btfs


def test_load_module_btf_file(vmcore_key, vmcore_path: Path) -> None:
    """Any BTF split on this vmlinux (here the dump's own ext4 BTF, added again
    under another name) is searched for types after the loaded modules'."""
    s = open_btf(vmcore_path)
    ext4 = s.kb.module_btf("ext4")
    assert ext4 is not None
    added = drgn_btfvars.load_btf(s.prog, bytes(ext4.data), name="ext4-again")
    assert added.first_id == s.kb.vmlinux().end_id
    assert added in list(s.kb._iter_module_btfs())
    assert s.prog.type("struct ext4_sb_info").size == ext4.size_of(
        ext4.find("ext4_sb_info")[0])
