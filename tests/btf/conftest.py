"""Fixtures for the BTF engine tests: the committed real BTF, both reader paths."""

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("ext4", "loop")


def _pinned_kernels() -> tuple:
    """Every kernel pinned in vmcores/kernels.py: each must have committed BTF fixtures."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_btf_kernels", ROOT / "vmcores" / "kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return tuple(mod.KERNELS)


KERNELS = _pinned_kernels()


@lru_cache(maxsize=None)
def fixture_bytes(key: str, name: str) -> bytes:
    """Decompressed vmcores/<key>/btf/<name>.btf.zst."""
    zstandard = pytest.importorskip("zstandard", reason="zstandard (the 'test' extra) is needed "
                                    "to decompress the committed BTF fixtures")
    p = ROOT / "vmcores" / key / "btf" / f"{name}.btf.zst"
    assert p.exists(), f"{p} missing: run python3 tests/btf/make_fixtures.py {key}"
    with open(p, "rb") as f:
        return zstandard.ZstdDecompressor().decompressobj().decompress(f.read())


def fixture_path(tmp_dir: Path, key: str, name: str) -> Path:
    p = tmp_dir / f"{key}-{name}.btf"
    if not p.exists():
        p.write_bytes(fixture_bytes(key, name))
    return p


def bpftool() -> "str | None":
    for c in ("bpftool", "/usr/sbin/bpftool", "/sbin/bpftool"):
        p = shutil.which(c)
        if p:
            return p
    return None


@lru_cache(maxsize=None)
def fixture_btf(key: str, name: str):
    """A shared, read-only Btf of a fixture (modules split over the shared vmlinux), so that
    the slow full decodes happen once per session."""
    from drgn_btfvars.btf import Btf
    if name == "vmlinux":
        return Btf(fixture_bytes(key, name), name="vmlinux")
    return Btf(fixture_bytes(key, name), fixture_btf(key, "vmlinux"), name=name)
