"""Access to the committed vmcore fixtures, for tests (no dependency on the plugin).

Each kernel key with a committed dump has, under ``vmcores/<key>/``::

    vmcore.zst        the ELF dump (QMP dump-guest-memory), zstd --long=27
    truth.json.zst    the DWARF ground truth (see truth.py for the format)
    manifest.json     how the dump was made (kernel, qemu args, sha256, sizes, ...)
    serial.log        the guest console

Dumps are decompressed on first use into one temporary directory per process
(removed at exit), or into ``$DRGN_BTFVARS_VMCORE_DIR`` when that is set, where
they are kept and reused across sessions (size-checked).  Needs the
``zstandard`` package.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent
# The order tests run in: oldest kernel to newest, an arm64 dump after its x86 twin
# (the newest, sid, stays last: the demo's default).
KEYS = ("bookworm", "trixie", "trixie-arm64", "sid")
FILES = ("vmcore.zst", "truth.json.zst", "manifest.json")

_lock = threading.Lock()
_tmpdir: Optional[Path] = None
_paths: Dict[str, Path] = {}


def fixture_dir(key: str) -> Path:
    """``vmcores/<key>/``."""
    return ROOT / key


def available() -> List[str]:
    """Kernel keys whose dump, truth and manifest are all present."""
    keys = list(KEYS) + sorted(
        p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in KEYS
    )
    return [k for k in keys if all((ROOT / k / f).is_file() for f in FILES)]


def manifest(key: str) -> Dict[str, Any]:
    """The parsed ``manifest.json`` of a kernel's fixture."""
    return json.loads((fixture_dir(key) / "manifest.json").read_text())


def _zstd_decompressor() -> Any:
    import zstandard

    # The dumps are compressed with --long=27: allow that window (and more).
    return zstandard.ZstdDecompressor(max_window_size=1 << 31)


#: The fake module carrying the variable BTF (see drgn_btfvars.gen).
FAKE_MODULE = "btf_global_variables"


def fake_module_loaded(key: str) -> bool:
    """Whether the dump was made with ``btf_global_variables.ko`` loaded."""
    return FAKE_MODULE in manifest(key).get("extra_modules", [])


def vars_btf_file(key: str) -> Optional[Path]:
    """The committed variable BTF of a kernel (zstd), if any."""
    p = fixture_dir(key) / "vars" / f"{FAKE_MODULE}.btf.zst"
    return p if p.is_file() else None


@functools.lru_cache(maxsize=None)
def vars_btf(key: str) -> bytes:
    """The committed variable BTF of a kernel, decompressed."""
    p = vars_btf_file(key)
    if p is None:
        raise FileNotFoundError(f"no committed variable BTF for {key}")
    return _zstd_decompressor().decompress(p.read_bytes(), max_output_size=1 << 28)


def vars_btf_for_drgn(key: str, directory: Path) -> Optional[Path]:
    """A raw variable BTF file for ``$DRGN_BTFVARS_VARS`` when the dump lacks
    the fake module (written into ``directory``), else ``None``."""
    if fake_module_loaded(key) or vars_btf_file(key) is None:
        return None
    out = Path(directory) / f"{key}-vars.btf"
    out.write_bytes(vars_btf(key))
    return out


@functools.lru_cache(maxsize=None)
def truth(key: str) -> Dict[str, Any]:
    """The parsed ground truth of a kernel's fixture (cached; do not mutate it)."""
    data = (fixture_dir(key) / "truth.json.zst").read_bytes()
    return json.loads(_zstd_decompressor().decompressobj().decompress(data))


def serial_log(key: str) -> str:
    """The guest console log of the fixture."""
    return (fixture_dir(key) / "serial.log").read_text(errors="replace")


def _cleanup() -> None:
    global _tmpdir
    if _tmpdir is not None:
        shutil.rmtree(_tmpdir, ignore_errors=True)
        _tmpdir = None


def _out_dir() -> Path:
    global _tmpdir
    keep = os.environ.get("DRGN_BTFVARS_VMCORE_DIR")
    if keep:
        d = Path(keep)
        d.mkdir(parents=True, exist_ok=True)
        return d
    if _tmpdir is None:
        _tmpdir = Path(tempfile.mkdtemp(prefix="drgn-btfvars-vmcores-"))
        atexit.register(_cleanup)
    return _tmpdir


def vmcore_path(key: str) -> Path:
    """The decompressed ELF dump of a kernel (decompressed once, then cached).

    The SHA-256 of the decompressed bytes is checked against the manifest.
    """
    with _lock:
        if key in _paths and _paths[key].exists():
            return _paths[key]
        m = manifest(key)
        want = m["vmcore"]["sha256"]
        out = _out_dir() / f"{key}-{want[:16]}.vmcore"
        if out.exists() and out.stat().st_size == m["vmcore"]["size"]:
            _paths[key] = out
            return out
        tmp = out.with_name(out.name + ".part")
        h = hashlib.sha256()
        with open(fixture_dir(key) / "vmcore.zst", "rb") as src, open(tmp, "wb") as dst:
            reader = _zstd_decompressor().stream_reader(src)
            while True:
                chunk = reader.read(1 << 22)
                if not chunk:
                    break
                h.update(chunk)
                dst.write(chunk)
        if h.hexdigest() != want:
            tmp.unlink()
            raise ValueError(f"{key}: decompressed dump sha256 {h.hexdigest()} != manifest {want}")
        tmp.replace(out)
        _paths[key] = out
        return out


def _kernels_module() -> Any:
    spec = importlib.util.spec_from_file_location("_drgn_btfvars_vmcores_kernels", ROOT / "kernels.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def debug_vmlinux(key: str) -> Optional[Path]:
    """The ``-dbg`` vmlinux of a kernel if it is already unpacked in the cache (never downloads)."""
    kernels = _kernels_module()
    base = os.environ.get("DRGN_BTFVARS_CACHE") or str(Path.home() / ".cache" / "drgn-btfvars")
    if key not in kernels.KERNELS or not (Path(base) / "kernels" / key / "dbg" / ".done").exists():
        return None
    try:
        return kernels.KERNELS[key].debug_vmlinux()
    except FileNotFoundError:
        return None


def vmcoreinfo(path: Path) -> Dict[str, str]:
    """The ``VMCOREINFO`` note of an ELF dump, as a dict (no drgn needed).

    QEMU writes it (from ``-device vmcoreinfo``) as an ELF note named ``VMCOREINFO``.
    """
    from drgn_btfvars.sources import read_elf_vmcoreinfo

    text = read_elf_vmcoreinfo(str(path))
    if text is None:
        raise LookupError(f"{path}: no VMCOREINFO note (or not an ELF file)")
    out = {}
    for line in text.split("\n"):
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def dwarf_program(key: str) -> Any:
    """A drgn program on the dump with the ``-dbg`` vmlinux DWARF loaded, or None without it.

    Plugins are whatever this process has (set ``DRGN_DISABLE_PLUGINS='*'`` before the
    first program is made to keep ours out, as ``truth.py`` does).
    """
    import drgn

    vmlinux = debug_vmlinux(key)
    if vmlinux is None:
        return None
    prog = drgn.Program()
    prog.set_core_dump(str(vmcore_path(key)))
    prog.load_debug_info([str(vmlinux)])
    return prog
