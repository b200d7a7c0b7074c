"""The short, deterministic run of the BTF fuzzer (the long run is in README.rst,
"Hostile and broken input"): accelerated and pure-Python readers agree on every
input, and nothing but BtfError comes out of the reader or the conversion."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_short_run(tmp_path: Path) -> None:
    pytest.importorskip("zstandard", reason="the fuzz seeds are the committed zstd BTF fixtures")
    if not list((ROOT / "vmcores").glob("*/btf/vmlinux.btf.zst")):
        pytest.skip("no committed BTF fixtures (vmcores/<key>/btf) to seed the fuzzer")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_btf.py"), "--inputs", "3000", "--seed", "7",
         "--out", str(tmp_path), "--json", "--progress", "0"],
        capture_output=True, text=True, timeout=1800)
    assert proc.stdout.strip(), proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n[fuzz short run] {res}")
    findings = [p.read_text()[-1500:] for p in sorted(tmp_path.glob("*.txt"))[:3]]
    assert (res["crashes"], res["hangs"], res["unexpected_exceptions"]) == (0, 0, 0), findings
    assert res["inputs"] == 3000
    # Both outcomes are exercised: inputs the reader rejects, and inputs it
    # opens, whose every type is then converted to a drgn type.
    assert res["opened"] > 300 and res["rejected"] > 300, res
