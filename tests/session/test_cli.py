"""``drgn-btfvars status | dump | verify`` on the committed dumps: output
checked against the DWARF truth and the committed BTF, exit statuses 0
(ok), 1 (not found, or a difference from DWARF), 2 (bad usage or input)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drgn_btfvars import cli
from drgn_btfvars.btf import Btf, BtfKind, cdump
from vmcores import fixtures


def run(capsys, *argv: str):
    """``drgn-btfvars ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_help() -> None:
    """The console script's --help names every command and the exit statuses."""
    r = subprocess.run([sys.executable, "-m", "drgn_btfvars.cli", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for word in ("status", "dump", "verify", "generate", "build-module", "exit status"):
        assert word in r.stdout, word
    for command in ("status", "dump", "verify"):
        r = subprocess.run([sys.executable, "-m", "drgn_btfvars.cli", command, "--help"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "--core" in r.stdout, (command, r.stdout)


def test_usage_errors(capsys, tmp_path) -> None:
    assert run(capsys, "status", "-c", tmp_path / "missing")[0] == 2
    not_a_dump = tmp_path / "x"
    not_a_dump.write_text("hello")
    rc, _, err = run(capsys, "status", "-c", not_a_dump)
    assert rc == 2 and "cannot open" in err
    assert run(capsys, "dump")[0] == 2  # no NAME
    assert run(capsys, "no-such-command")[0] == 2
    assert run(capsys, "dump", "--btf", not_a_dump, "u32")[0] == 2  # not BTF


def test_status(capsys, vmcore_path, vmcore_key, vmcore_truth) -> None:
    rc, out, _ = run(capsys, "status", "-c", vmcore_path)
    assert rc == 0
    assert vmcore_truth["kernel"]["release"] in out.splitlines()[0]
    assert f"{vmcore_truth['kernel']['vmlinux_btf_size']:,} bytes" in out
    if fixtures.fake_module_loaded(vmcore_key):
        assert "from module btf_global_variables" in out and "matches this kernel" in out
    rc, out, _ = run(capsys, "status", "-c", vmcore_path, "--json")
    st = json.loads(out)
    assert rc == 0 and st["vmlinux_btf"]["bytes"] == vmcore_truth["kernel"]["vmlinux_btf_size"]
    assert sorted(st["module_btfs"]) == sorted(
        m for m in vmcore_truth["kernel"]["modules_btf"] if m != fixtures.FAKE_MODULE)


def test_status_stock(capsys, vmcore_path) -> None:
    rc, out, _ = run(capsys, "status", "-c", vmcore_path, "--stock")
    assert rc == 0
    assert "variable BTF: none" in out and "declarations:" in out


def test_dump(capsys, vmcore_path, vmcore_key, vmcore_truth) -> None:
    """Types as the BTF engine writes them, globals and functions at the
    addresses DWARF gives."""
    vmlinux = Btf(fixtures._zstd_decompressor().decompress(
        (fixtures.fixture_dir(vmcore_key) / "btf" / "vmlinux.btf.zst").read_bytes(),
        max_output_size=1 << 28))
    rc, out, _ = run(capsys, "dump", "-c", vmcore_path, "--address",
                     "struct list_head", "init_task", "schedule")
    assert rc == 0
    want = cdump.definition(vmlinux, vmlinux.find("list_head", BtfKind.STRUCT)[0])
    assert out.startswith(want + "\n")
    by_name = {v["name"]: v for v in vmcore_truth["variables"]}
    assert f"/* init_task at {by_name['init_task']['address']:#x} */\n" \
           "struct task_struct init_task;" in out
    assert "void schedule(void);" in out
    rc, out, err = run(capsys, "dump", "-c", vmcore_path, "no_such_name_anywhere", "u32")
    assert rc == 1 and "no_such_name_anywhere: not found" in err
    assert "typedef __u32 u32;" in out


def test_dump_stock(capsys, vmcore_path, vmcore_truth) -> None:
    """In degraded mode a global comes from the declaration table."""
    rc, out, _ = run(capsys, "dump", "-c", vmcore_path, "--stock", "--address", "avenrun", "prb")
    assert rc == 0
    by_name = {v["name"]: v for v in vmcore_truth["variables"]}
    assert (f"/* avenrun at {by_name['avenrun']['address']:#x} (declaration table) */\n"
            "unsigned long avenrun[3];") in out
    assert "struct printk_ringbuffer *prb;" in out


def test_dump_btf_file_like_bpftool(capsys, tmp_path) -> None:
    """``dump --btf FILE`` prints what bpftool prints for the same type."""
    from tests.btf.conftest import bpftool

    tool = bpftool()
    if tool is None:
        pytest.skip("bpftool not installed (apt package bpftool; bash dev.sh installs it)")
    path = tmp_path / "vmlinux.btf"
    path.write_bytes(fixtures._zstd_decompressor().decompress(
        (fixtures.fixture_dir("sid") / "btf" / "vmlinux.btf.zst").read_bytes(),
        max_output_size=1 << 28))
    r = subprocess.run([tool, "btf", "dump", "file", str(path), "format", "c"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("struct task_struct", "struct rq", "enum pid_type", "struct page"):
        rc, out, _ = run(capsys, "dump", "--btf", path, name)
        assert rc == 0
        assert "\n" + out.rstrip("\n") + "\n" in r.stdout, name


def test_verify(capsys, vmcore_path, vmcore_key) -> None:
    truth = fixtures.fixture_dir(vmcore_key) / "truth.json.zst"
    rc, out, _ = run(capsys, "verify", "-c", vmcore_path, "--truth", truth)
    assert rc == 0, out
    assert "mismatched 0" in out and out.rstrip().endswith("differs from DWARF")
    other = next((k for k in fixtures.available() if k != vmcore_key), None)
    if other is not None:
        rc, _, err = run(capsys, "verify", "-c", vmcore_path, "--truth",
                         fixtures.fixture_dir(other) / "truth.json.zst")
        assert rc == 2 and "truth of build" in err


def test_verify_bad_truth(capsys, vmcore_path, tmp_path: Path) -> None:
    bad = tmp_path / "truth.json"
    bad.write_text("{}")
    rc, _, err = run(capsys, "verify", "-c", vmcore_path, "--truth", bad)
    assert rc == 2 and "not a truth file" in err
