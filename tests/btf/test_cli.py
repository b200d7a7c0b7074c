"""python3 -m drgn_btfvars.btf: dump / counts / validate / find on a real chain."""

import subprocess
import sys

from drgn_btfvars.btf import Btf

from .conftest import fixture_bytes


def run(*args):
    return subprocess.run([sys.executable, "-m", "drgn_btfvars.btf", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli(tmp_path):
    v = tmp_path / "vmlinux.btf"
    m = tmp_path / "loop.btf"
    v.write_bytes(fixture_bytes("trixie", "vmlinux"))
    m.write_bytes(fixture_bytes("trixie", "loop"))
    mod = Btf(m.read_bytes(), Btf(v.read_bytes()))
    r = run("dump", str(m), "-B", str(v))
    assert r.returncode == 0
    assert r.stdout.splitlines() == "\n".join(mod.dump_raw(i) for i in mod.ids()).splitlines()
    r = run("counts", str(m), "-B", str(v))
    assert r.returncode == 0 and f"total        {len(mod)}" in r.stdout
    r = run("validate", str(m), "-B", str(v))
    assert r.returncode == 0 and "OK" in r.stdout
    r = run("find", "task_struct", str(m), "-B", str(v))
    assert r.returncode == 0 and "STRUCT 'task_struct'" in r.stdout
    r = run("validate", str(m))  # a split file without its base
    assert r.returncode == 1 and "error:" in r.stderr and "offset" in r.stderr
