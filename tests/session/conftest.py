"""Sessions on the committed dumps as a crash analyst opens them: BTF only,
with the variable BTF (the fake module in the dump) or as a stock kernel,
and drgn's module objects created as ``drgn -c`` does."""

from pathlib import Path
from typing import Any, Dict

import drgn
import pytest

import drgn_btfvars
from vmcores import commands, fixtures

from ..integration.conftest import BtfSession


def _open(path: Path, **kwargs: Any) -> BtfSession:
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    kb = drgn_btfvars.enable(prog, **kwargs)
    prog.load_default_debug_info()  # what the drgn CLI does at startup
    return BtfSession(prog, kb)


@pytest.fixture(scope="session")
def recorded(vmcore_key: str) -> Dict[str, Any]:
    """The DWARF outputs recorded by ``python3 vmcores/commands.py record``."""
    pytest.importorskip("zstandard")
    rec = commands.load(vmcore_key)
    if rec is None:
        pytest.skip(f"{vmcore_key}: no vmcores/{vmcore_key}/{commands.FILE_NAME} "
                    f"(python3 vmcores/commands.py record {vmcore_key})")
    if rec.get("vmcore_sha256") != fixtures.manifest(vmcore_key)["vmcore"]["sha256"]:
        pytest.fail(f"{vmcore_key}: {commands.FILE_NAME} was recorded on another dump: "
                    f"python3 vmcores/commands.py record {vmcore_key}")
    return rec


@pytest.fixture(scope="session")
def btf_session(vmcore_key: str, vmcore_path: Path) -> BtfSession:
    """BTF only, with the variable BTF: the fake module's when it is loaded
    in the dump, else the committed file."""
    if fixtures.fake_module_loaded(vmcore_key):
        return _open(vmcore_path)
    if fixtures.vars_btf_file(vmcore_key) is None:
        pytest.skip(f"{vmcore_key}: no variable BTF")
    return _open(vmcore_path, vars_btf=fixtures.vars_btf(vmcore_key))


@pytest.fixture(scope="session")
def degraded_session(vmcore_key: str, vmcore_path: Path) -> BtfSession:
    """BTF only, as on a stock kernel: no variable BTF at all."""
    return _open(vmcore_path, use_fake_module=False)
