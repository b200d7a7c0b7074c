"""A real kernel older than 6.0 (Debian bullseye 5.10), when its dump has been
made in the cache by ``python3 tests/hostile/real_pre60.py build`` (never
committed; skipped otherwise): without a symbol file the session says how
to give one; with the -dbg System.map and a generated variable BTF, BTF
agrees with DWARF on the same dump."""

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _script():
    spec = importlib.util.spec_from_file_location("real_pre60", HERE / "real_pre60.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_real_pre60_kernel() -> None:
    mod = _script()
    if not mod.ready():
        pytest.skip("no real pre-6.0 dump in the cache: run "
                    "'python3 tests/hostile/real_pre60.py build' (downloads ~1 GB)")
    res = mod.compare()
    print(f"\n[bullseye 5.10, real] {res}")
    assert "this kernel's VMCOREINFO has no kallsyms (added in Linux 6.0" in res["without_file"]
    assert "link addresses (System.map) + KASLR offset" in res["kallsyms"]
    for what in ("variables", "struct/union layouts", "enums", "functions"):
        assert res[what]["mismatched"] == 0, (what, res[what]["mismatched_reasons"])
        assert res[what]["matched"] > 0.8 * sum(res[what][b] for b in
                                                 ("matched", "mismatched", "known_loss",
                                                  "not_found")), (what, res[what])
    assert res["tasks"]["different"] == 0 and res["tasks"]["same kernel stack PCs"] > 10
