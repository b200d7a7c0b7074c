"""A variable BTF made for another build of the kernel, from every place the
plugin takes one (bytes, a file, ``$DRGN_BTFVARS_VARS``, the search path by
release and by build ID, a ``.ko``): refused with a message naming both
builds, and never used. (The dump case, another build's BTF inside the
loaded fake module, is in test_dumps.py.)"""

import struct
from pathlib import Path

import pytest

from vmcores import fixtures as vmcore_fixtures

from .dumps import open_session


def minimal_ko(path: Path, btf: bytes) -> Path:
    """An ELF relocatable file with just a ``.BTF`` section (as the fake
    module carries its variable BTF)."""
    shstr = b"\0.BTF\0.shstrtab\0"
    data_off = 64
    shstr_off = data_off + len(btf)
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 1, 62, 1, 0, 0,
                       sh_off, 0, 64, 0, 0, 64, 3, 2)
    null = bytes(64)
    btf_sh = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_off, len(btf), 0, 0, 1, 0)
    str_sh = struct.pack("<IIQQQQIIQQ", 6, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
    blob = ehdr + btf + shstr
    path.write_bytes(blob + bytes(sh_off - len(blob)) + null + btf_sh + str_sh)
    return path


def other_build(key: str):
    for k in vmcore_fixtures.KEYS:
        if k != key and vmcore_fixtures.vars_btf_file(k) is not None:
            return k
    return None


@pytest.mark.parametrize("how", ["bytes", "file", "env", "ko", "search-release",
                                 "search-build-id"])
def test_foreign_variable_btf_refused(vmcore_key, vmcore_path, vmcore_truth, tmp_path,
                                      monkeypatch, how: str) -> None:
    from drgn_btfvars import finders

    other = other_build(vmcore_key)
    if other is None:
        pytest.skip("needs another kernel's committed variable BTF")
    foreign = vmcore_fixtures.vars_btf(other)
    ours, theirs = vmcore_truth["kernel"], vmcore_fixtures.truth(other)["kernel"]
    kwargs = {}
    if how == "bytes":
        kwargs["vars_btf"] = foreign
    elif how in ("file", "env"):
        (tmp_path / "vars.btf").write_bytes(foreign)
        if how == "file":
            kwargs["vars_btf"] = tmp_path / "vars.btf"
        else:
            monkeypatch.setenv("DRGN_BTFVARS_VARS", str(tmp_path / "vars.btf"))
    elif how == "ko":
        kwargs["vars_btf"] = minimal_ko(tmp_path / "btf_global_variables.ko", foreign)
    else:
        # Installed under this kernel's release or build ID (a wrong copy):
        # the plugin looks there when no fake module is loaded.
        monkeypatch.setattr(finders, "FAKE_MODULE_NAME", "no_such_module")
        if how == "search-release":
            (tmp_path / ours["release"]).mkdir()
            (tmp_path / ours["release"] / "btf_global_variables.btf").write_bytes(foreign)
        else:
            (tmp_path / f"{ours['build_id']}.btf").write_bytes(foreign)
        monkeypatch.setenv("DRGN_BTFVARS_PATH", str(tmp_path))
    prog, kb = open_session(vmcore_path, **kwargs)
    assert prog.type("struct task_struct").size > 1000  # the session goes on
    assert kb.vars() is None
    msg = " ".join(kb.warnings)
    assert "refused" in msg, msg
    for k in (theirs, ours):  # both builds, by release and build ID
        assert k["release"] in msg and k["build_id"] in msg, (k["release"], msg)
    # Nothing from it is used: a global both kernels have is not typed from
    # the foreign BTF (stock mode may type it from this kernel's BTF: then
    # at DWARF's address).
    try:
        obj = prog["jiffies_64"]
    except LookupError:
        pass
    else:
        want = next(v for v in vmcore_truth["variables"] if v["name"] == "jiffies_64")
        assert obj.address_ == want["address"]
