"""Scratch copies of the committed dumps, broken on purpose (see dumps.py)."""

import logging
from pathlib import Path
from typing import Dict

import pytest

from vmcores import fixtures as vmcore_fixtures

from .dumps import Located, ScratchDump


@pytest.fixture(autouse=True)
def _no_bootstrap_cache(monkeypatch):
    """Every session here starts from nothing: a cached address from an
    earlier session on the same build would hide what these tests break."""
    monkeypatch.setenv("DRGN_BTFVARS_NO_CACHE", "1")
    for var in ("DRGN_BTFVARS_VARS", "DRGN_BTFVARS_KALLSYMS", "DRGN_BTFVARS_NO_FAKE_MODULE",
                "DRGN_BTFVARS_PATH"):
        monkeypatch.delenv(var, raising=False)
    logger = logging.getLogger("drgn_btfvars")
    level = logger.level
    logger.setLevel(logging.ERROR)  # warnings are checked (KernelBtf.warnings), not printed
    yield
    logger.setLevel(level)


_scratch: Dict[str, ScratchDump] = {}


@pytest.fixture(scope="session")
def located(vmcore_key: str, vmcore_path: Path) -> Located:
    return Located(vmcore_path, vmcore_fixtures.vmcoreinfo(vmcore_path))


@pytest.fixture
def scratch(vmcore_key: str, vmcore_path: Path, tmp_path_factory) -> ScratchDump:
    """The kernel's scratch dump (one sparse copy per session), restored after each test."""
    sd = _scratch.get(vmcore_key)
    if sd is None:
        d = tmp_path_factory.mktemp("scratch")
        sd = _scratch[vmcore_key] = ScratchDump(vmcore_path, d / f"{vmcore_key}.vmcore")
    try:
        yield sd
    finally:
        sd.restore()
