"""Programs opened on the committed vmcores with BTF only."""

from pathlib import Path
from typing import NamedTuple, Optional

import drgn
import pytest

import drgn_btfvars
from drgn_btfvars.finders import KernelBtf
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


vars_btf_file = vmcore_fixtures.vars_btf_file
vars_btf_bytes = vmcore_fixtures.vars_btf
fake_module_loaded = vmcore_fixtures.fake_module_loaded


def other_key_with_vars(key: str) -> Optional[str]:
    for other in vmcore_fixtures.KEYS:
        if other != key and vars_btf_file(other) is not None:
            return other
    return None


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
