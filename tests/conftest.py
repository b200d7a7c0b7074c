"""Shared pytest fixtures: the committed real-kernel vmcores and their DWARF ground truth.

``vmcore_key`` is parametrized over the kernels whose dump is committed under
``vmcores/<key>/`` (see ``vmcores/fixtures.py``); when none is, tests using it are
skipped with a message saying how to build them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vmcores import fixtures as vmcore_fixtures  # noqa: E402

NO_VMCORES = (
    "no committed vmcore fixtures (vmcores/<key>/vmcore.zst, truth.json.zst, manifest.json); "
    "build them with: python3 vmcores/build.py"
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``vmcore_key`` over the available fixtures (or skip when there are none)."""
    if "vmcore_key" in metafunc.fixturenames:
        keys = vmcore_fixtures.available()
        if keys:
            metafunc.parametrize("vmcore_key", keys, scope="session")
        else:
            metafunc.parametrize(
                "vmcore_key", [pytest.param(None, marks=pytest.mark.skip(reason=NO_VMCORES))],
                scope="session",
            )


@pytest.fixture(scope="session")
def vmcore_path(vmcore_key: str) -> Path:
    """The decompressed ELF dump (decompressed once per session; needs ``zstandard``)."""
    pytest.importorskip("zstandard")
    return vmcore_fixtures.vmcore_path(vmcore_key)


@pytest.fixture(scope="session")
def vmcore_truth(vmcore_key: str) -> Dict[str, Any]:
    """The DWARF ground truth of the dump (see ``vmcores/truth.py``); do not mutate it."""
    pytest.importorskip("zstandard")
    return vmcore_fixtures.truth(vmcore_key)


@pytest.fixture(scope="session")
def vmcore_manifest(vmcore_key: str) -> Dict[str, Any]:
    """The manifest of the dump (kernel, qemu arguments, sha256, sizes)."""
    return vmcore_fixtures.manifest(vmcore_key)
