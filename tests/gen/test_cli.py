"""The drgn-btfvars command line (argument handling and error paths)."""

import stat

import pytest

from drgn_btfvars.cli import COMMANDS, build_parser, main


def test_subcommands():
    assert {"generate", "build-module"} <= set(COMMANDS)
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_old_pahole_is_refused_by_name(tmp_path, capsys):
    fake = tmp_path / "pahole"
    fake.write_text("#!/bin/sh\necho v1.24\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    vml = tmp_path / "vmlinux"
    vml.write_bytes(b"")
    base = tmp_path / "base.btf"
    from drgn_btfvars.btf import BtfBuilder
    b = BtfBuilder()
    b.add_int("int", 4, 1)
    base.write_bytes(b.to_bytes())
    rc = main(["generate", "--vmlinux", str(vml), "--base", str(base), "--pahole", str(fake),
               "-o", str(tmp_path / "out.btf")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1.28" in err and "1.24" in err


def test_build_module_bad_headers(tmp_path, capsys):
    btf = tmp_path / "v.btf"
    btf.write_bytes(b"")
    rc = main(["build-module", "--headers", str(tmp_path), "--btf", str(btf),
               "-o", str(tmp_path / "x.ko")])
    assert rc == 1
    assert "headers" in capsys.readouterr().err
