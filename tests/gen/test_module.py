"""The kbuild builder's helpers, on a fake unpacked headers tree (no compiler run)."""

import os
from pathlib import Path

import pytest

from drgn_btfvars.gen import module


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "root" / "usr" / "src"
    (src / "linux-headers-7.9.0-amd64").mkdir(parents=True)
    (src / "linux-headers-7.9.0-common").mkdir()
    (src / "linux-headers-7.9.0-amd64" / "Makefile").write_text(
        "KBUILD_OUTPUT=/usr/src/linux-headers-7.9.0-amd64\n"
        "include /usr/src/linux-headers-7.9.0-common/Makefile\n")
    (src / "linux-headers-7.9.0-common" / "Makefile").write_text("all:\n")
    return src / "linux-headers-7.9.0-amd64"


def test_prepare_headers_rewrites_absolute_paths(tmp_path):
    h = _tree(tmp_path)
    done = module.prepare_headers(h)
    root = tmp_path / "root"
    text = (h / "Makefile").read_text()
    assert f"KBUILD_OUTPUT={root}/usr/src/linux-headers-7.9.0-amd64" in text
    assert f"include {root}/usr/src/linux-headers-7.9.0-common/Makefile" in text
    assert done["rewritten"] == [str(h / "Makefile")]
    # Idempotent.
    assert module.prepare_headers(h)["rewritten"] == []
    assert (h / "Makefile").read_text() == text


def test_kernel_release_from_dir_name(tmp_path):
    assert module.kernel_release(_tree(tmp_path)) == "7.9.0-amd64"


def test_not_a_headers_dir(tmp_path):
    with pytest.raises(module.ModuleBuildError):
        module.prepare_headers(tmp_path)


def test_glibc_requirement_detection(tmp_path):
    exe = tmp_path / "tool"
    exe.write_bytes(b"\x7fELF" + bytes(12) + b"\x03" + b"..GLIBC_2.2.5\0GLIBC_99.1\0")
    exe.chmod(0o755)
    assert module._needs_new_glibc(exe)
    exe.write_bytes(b"\x7fELF" + bytes(12) + b"\x03" + b"..GLIBC_2.2.5\0")
    assert not module._needs_new_glibc(exe)


def test_module_source_is_complete():
    src = module.MODULE_SOURCE
    assert "module_init(" in src and 'MODULE_LICENSE("GPL")' in src and "@RELEASE@" in src
