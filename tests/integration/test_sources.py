"""Where BTF and addresses come from, on the committed real vmcores: the
variable BTF search path, the per-build bootstrap cache, kernels without
data symbols in kallsyms."""


import pytest
from drgn import SymbolKind

from drgn_btfvars import verify
from drgn_btfvars.bootstrap import BootstrapCache

from .conftest import open_btf, vars_btf_bytes, vars_btf_file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRGN_BTFVARS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DRGN_BTFVARS_NO_CACHE", raising=False)
    return tmp_path / "cache"


def _need_vars(key):
    if vars_btf_file(key) is None:
        pytest.skip(f"{key}: no committed variable BTF")


def test_search_path(vmcore_path, vmcore_key, vmcore_truth, tmp_path, monkeypatch, cache) -> None:
    """A variable BTF installed under ``$DRGN_BTFVARS_PATH/<release>/`` is
    found and used when no fake module is loaded (the committed dumps have
    it loaded: the test makes the plugin look for a module that is not)."""
    from drgn_btfvars import finders

    _need_vars(vmcore_key)
    monkeypatch.setattr(finders, "FAKE_MODULE_NAME", "no_such_module")
    release = vmcore_truth["kernel"]["release"]
    (tmp_path / "share" / release).mkdir(parents=True)
    (tmp_path / "share" / release / "btf_global_variables.btf").write_bytes(vars_btf_bytes(vmcore_key))
    monkeypatch.setenv("DRGN_BTFVARS_PATH", str(tmp_path / "share"))
    s = open_btf(vmcore_path, use_fake_module=True)
    j64 = {v["name"]: v for v in vmcore_truth["variables"]}["jiffies_64"]
    assert s.prog["jiffies_64"].address_ == j64["address"]
    assert release in s.kb.status()["variable_btf"]["source"]


def test_bootstrap_cache(vmcore_path, vmcore_key, vmcore_truth, cache) -> None:
    """The second session on a build reads BTF without loading kallsyms."""
    _need_vars(vmcore_key)
    first = open_btf(vmcore_path, vars_btf=vars_btf_bytes(vmcore_key))
    first.prog["jiffies_64"]
    assert first.kb._kallsyms is not None  # the first session needed kallsyms
    files = list((cache / "bootstrap").glob("*.txt"))
    assert len(files) == 1 and vmcore_truth["kernel"]["build_id"] in files[0].name
    second = open_btf(vmcore_path, vars_btf=vars_btf_bytes(vmcore_key))
    obj = second.prog["init_task"]
    assert obj.comm.string_() == b"swapper/0"
    assert second.kb._kallsyms is None, "kallsyms loaded although the cache had the addresses"
    assert not second.kb.warnings


def test_bootstrap_cache_wrong_is_dropped(vmcore_path, vmcore_key, vmcore_truth, cache) -> None:
    """A cache entry with wrong addresses is detected, dropped, and kallsyms used."""
    info = vmcore_truth["kernel"]
    bc = BootstrapCache(info["build_id"], info["kaslr_offset"])
    first = open_btf(vmcore_path)
    good = {n: first.kb._symbol_address(n) for n in ("__start_BTF", "__stop_BTF", "btf_modules",
                                                      "modules", "_stext", "_end")}
    bad = dict(good, __start_BTF=good["__start_BTF"] + 4096, btf_modules=good["btf_modules"] + 64)
    bc.store(bad)
    s = open_btf(vmcore_path, use_fake_module=False)
    assert s.prog.type("struct task_struct").size > 1000
    assert any("dropped" in w for w in s.kb.warnings), s.kb.warnings
    assert s.kb._kallsyms is not None
    stored = BootstrapCache(info["build_id"], info["kaslr_offset"]).links()
    assert stored.get("__start_BTF", good["__start_BTF"] - info["kaslr_offset"]) == \
        (good["__start_BTF"] - info["kaslr_offset"]) & (2**64 - 1)


def test_without_data_symbols(vmcore_path, vmcore_key, vmcore_truth, monkeypatch, cache,
                              record_property) -> None:
    """A kernel without CONFIG_KALLSYMS_ALL (no data symbols in kallsyms):
    every variable's address still comes from the variable BTF's section
    records + KASLR offset, and equals DWARF's."""
    _need_vars(vmcore_key)
    s = open_btf(vmcore_path, vars_btf=vars_btf_bytes(vmcore_key))
    index = s.kb.kallsyms()
    assert index is not None

    class FunctionsOnly:
        def __call__(self, prog, name, address, one):
            return [sym for sym in index(prog, name, address, one) if sym.kind == SymbolKind.FUNC
                    or sym.name in ("__start_BTF", "__stop_BTF", "_stext", "_end")]

    s.kb._kallsyms = FunctionsOnly()  # what such a kernel's kallsyms gives
    report = verify.compare_variables(vmcore_truth["variables"], s.kb.variables,
                                      sections=["data", "bss", "rodata"])
    print(f"\n[{vmcore_key} without data symbols] {report.summary()}")
    record_property("without data symbols", report.summary())
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    assert report.count("matched") > 0.9 * report.total


def test_public_api(vmcore_path) -> None:
    """``enable()`` refuses a second call and non-kernel programs; ``get()``
    returns the program's state, kept in ``Program.config``."""
    import drgn

    import drgn_btfvars

    s = open_btf(vmcore_path)
    assert drgn_btfvars.get(s.prog) is s.kb
    with pytest.raises(ValueError, match="already enabled"):
        drgn_btfvars.enable(s.prog)
    user = drgn.Program()
    with pytest.raises(ValueError, match="Linux kernel"):
        drgn_btfvars.enable(user)
    assert drgn_btfvars.get(user) is None
