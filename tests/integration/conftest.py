"""Programs opened on the committed vmcores with BTF only."""

import functools
from pathlib import Path
from typing import NamedTuple, Optional

import drgn
import pytest

import drgn_btfvars
from drgn_btfvars.finders import FAKE_MODULE_NAME, KernelBtf
from vmcores import fixtures as vmcore_fixtures

REPO = Path(__file__).resolve().parents[2]


class BtfSession(NamedTuple):
    prog: drgn.Program
    kb: KernelBtf


def open_btf(path: Path, **kwargs) -> BtfSession:
    """A program on the dump with only this plugin's BTF finders (the
    plugin's auto-loading is disabled for the test process)."""
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    kb = drgn_btfvars.enable(prog, **kwargs)
    return BtfSession(prog, kb)


def vars_btf_file(key: str) -> Optional[Path]:
    p = REPO / "vmcores" / key / "vars" / "btf_global_variables.btf.zst"
    return p if p.is_file() else None


@functools.lru_cache(maxsize=None)
def vars_btf_bytes(key: str) -> bytes:
    import zstandard

    p = vars_btf_file(key)
    assert p is not None
    return zstandard.ZstdDecompressor().decompress(p.read_bytes(), max_output_size=1 << 28)


def other_key_with_vars(key: str) -> Optional[str]:
    for other in vmcore_fixtures.KEYS:
        if other != key and vars_btf_file(other) is not None:
            return other
    return None


def fake_module_loaded(key: str) -> bool:
    return FAKE_MODULE_NAME in " ".join(vmcore_fixtures.manifest(key).get("extra_modules", []))


@pytest.fixture(scope="session")
def vars_session(vmcore_key: str, vmcore_path: Path) -> BtfSession:
    """The dump with a variable BTF: the fake module's, when it is loaded in
    the dump, else the committed generated file."""
    if fake_module_loaded(vmcore_key):
        return open_btf(vmcore_path)
    if vars_btf_file(vmcore_key) is None:
        pytest.skip(f"{vmcore_key}: no fake module in the dump and no committed variable BTF")
    return open_btf(vmcore_path, vars_btf=vars_btf_bytes(vmcore_key))


@pytest.fixture(scope="session")
def stock_session(vmcore_key: str, vmcore_path: Path) -> BtfSession:
    """The dump as a stock kernel: no variable BTF at all."""
    return open_btf(vmcore_path, use_fake_module=False)
