"""Fixtures for the generator tests: committed variable BTFs and their bases."""

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pytest

from tests.btf.conftest import KERNELS  # noqa: F401  every pinned kernel (x86-64 and arm64)

ROOT = Path(__file__).resolve().parents[2]


def _zstd(p: Path) -> bytes:
    zstandard = pytest.importorskip("zstandard", reason="zstandard (the 'test' extra) is needed "
                                    "to decompress the committed fixtures")
    with open(p, "rb") as f:
        return zstandard.ZstdDecompressor().decompressobj().decompress(f.read())


@lru_cache(maxsize=None)
def committed_vars(key: str) -> Optional[bytes]:
    """vmcores/<key>/vars/btf_global_variables.btf.zst, decompressed (None if absent)."""
    p = ROOT / "vmcores" / key / "vars" / "btf_global_variables.btf.zst"
    return _zstd(p) if p.exists() else None


@lru_cache(maxsize=None)
def committed_base(key: str) -> Optional[bytes]:
    """vmcores/<key>/btf/vmlinux.btf.zst, decompressed (None if absent)."""
    p = ROOT / "vmcores" / key / "btf" / "vmlinux.btf.zst"
    return _zstd(p) if p.exists() else None


def vmcores_module(name: str):
    """Import vmcores/<name>.py (kernels, toolroot)."""
    d = str(ROOT / "vmcores")
    if d not in sys.path:
        sys.path.insert(0, d)
    return __import__(name)


def cache_dir() -> Path:
    return Path(os.environ.get("DRGN_BTFVARS_CACHE") or Path.home() / ".cache" / "drgn-btfvars")
