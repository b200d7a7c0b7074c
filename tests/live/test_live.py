"""A live kernel in a QEMU guest without debug info, compared with a dump of it.

The guest test is opt-in (``DRGN_BTFVARS_QEMU=1``): it boots each x86-64
kernel whose image, modules and ``btf_global_variables.ko`` are cached
(``python3 vmcores/toolroot.py fakemod <key>``), about 2–3 minutes each under
TCG, plus about 2 minutes once to build the guest's root file system (network
access: debootstrap and PyPI). The same run by hand, with its report::

    python3 vmcores/live.py [KEY ...]

The other tests check the comparison itself on synthetic input.
"""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "vmcores"))

import kernels  # noqa: E402
import live  # noqa: E402

X86_KEYS = [k for k, v in kernels.KERNELS.items() if getattr(v, "arch", "amd64") == "amd64"]

# Lower bounds of what one guest run answers (the 6.1 kernel, the smallest, has
# ~24k globals in its variable BTF and ~3k sampled functions).
MIN_GLOBALS = 20000
MIN_STOCK_ANSWERS = 3000


@pytest.mark.parametrize("key", X86_KEYS)
def test_live_guest_matches_dump(key: str, record_property) -> None:
    """drgn -k with the plugin inside a guest with no debug info answers exactly
    what the same checks answer on a dump of that guest taken right after."""
    if not os.environ.get("DRGN_BTFVARS_QEMU"):
        pytest.skip("set DRGN_BTFVARS_QEMU=1 to boot the kernels in QEMU (2-3 min each)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 (qemu-system-x86) is needed")
    if key not in live.cached_keys():
        pytest.skip(f"{key}: kernel image/modules or btf_global_variables.ko not cached "
                    f"(python3 vmcores/kernels.py {key}; python3 vmcores/toolroot.py fakemod {key})")
    if os.geteuid() != 0:
        pytest.skip("building the guest's root file system needs root (debootstrap, chroot)")
    report = live.run(key)
    assert report["guest_debug_paths"] == 0, "the guest sees debug info paths"

    for phase in ("stock", "vars"):
        p = report["phases"][phase]
        cmp = p["comparison"]
        meta = p["live_meta"]
        summary = (f"{key} {phase}: {cmp['answers']} answers equal, {cmp['differ']} differ, "
                   f"{cmp['equal'] - cmp['answers']} lookups fail on both sides; "
                   f"{p['guest_seconds']} s in the guest")
        print("\n" + summary)
        record_property(f"live {phase}", summary)
        assert meta["live"] and meta["plugin_auto_loaded"], meta
        assert meta["modules_with_debug_file"] == {}, "DWARF was found in the guest"
        assert meta["kallsyms_source"] == "/proc/kallsyms"
        assert cmp["differ"] == 0, [d for c in cmp["checks"].values() for d in c["differ"]][:5]
        assert cmp["unexpected_one_sided"] == 0, {
            c: (r["only_live"], r["only_dump"]) for c, r in cmp["checks"].items()
            if r["only_live"] or r["only_dump"]}
        checks = cmp["checks"]
        # Stack traces of the guest's sleeping processes (2 lsleep, lfifo, kthreadd, jbd2).
        assert checks["tasks"]["answers"] >= 5, checks["tasks"]
        assert checks["cli"]["answers"] == 1
        assert checks["kallsyms"]["answers"] >= 20
    stock, vars_ = report["phases"]["stock"], report["phases"]["vars"]
    assert stock["live_status"]["variable_btf"] is None
    assert vars_["live_status"]["variable_btf"]["source"] == "module btf_global_variables"
    # Types only in module BTF (from /sys/kernel/btf/<module>).
    assert stock["comparison"]["checks"]["module_types"]["answers"] >= 100
    assert stock["comparison"]["answers"] >= MIN_STOCK_ANSWERS
    assert vars_["comparison"]["checks"]["globals_sweep"]["answers"] >= MIN_GLOBALS


# --------------------------------------------------------------------------- the comparison


def _out(**checks):
    return {"meta": {}, "timings": {}, "checks": checks}


def test_compare_counts_equal_answers_and_errors() -> None:
    a = _out(types={"struct x": {"size": 8}, "struct y": {"error": "LookupError: y"}})
    r = live.compare(a, a, "vars")
    row = r["checks"]["types"]
    assert (row["compared"], row["equal"], row["answers"], row["errors_both"]) == (2, 2, 1, 1)
    assert r["differ"] == 0 and r["unexpected_one_sided"] == 0


def test_compare_reports_a_different_value() -> None:
    a = _out(globals={"nr_cpu_ids": {"value": 2}})
    b = _out(globals={"nr_cpu_ids": {"value": 4}})
    r = live.compare(a, b, "vars")
    assert r["differ"] == 1
    assert r["checks"]["globals"]["differ"] == [
        {"item": "nr_cpu_ids", "live": {"value": 2}, "dump": {"value": 4}}]


def test_compare_one_sided_items() -> None:
    """The fake module may be missing on the live side of the stock phase only
    (it is loaded after that run); anything else on one side only counts."""
    a = _out(modules={"RelocatableModule:ext4": [[1, 2]]})
    b = _out(modules={"RelocatableModule:ext4": [[1, 2]],
                      "RelocatableModule:btf_global_variables": [[3, 4]]})
    assert live.compare(a, b, "stock")["unexpected_one_sided"] == 0
    assert live.compare(a, b, "vars")["unexpected_one_sided"] == 1
    c = _out(modules={"RelocatableModule:ext4": [[1, 2]], "RelocatableModule:loop": [[5, 6]]})
    assert live.compare(a, c, "stock")["unexpected_one_sided"] == 1


def test_compare_cli_ignores_time_only() -> None:
    a = _out(cli={"drgn": {"rc": 0, "stdout": "9792", "seconds": 4.2, "stderr": ""}})
    b = _out(cli={"drgn": {"rc": 0, "stdout": "9792", "seconds": 0.9, "stderr": ""}})
    assert live.compare(a, b, "vars")["differ"] == 0
    c = _out(cli={"drgn": {"rc": 0, "stdout": "6080", "seconds": 0.9, "stderr": ""}})
    assert live.compare(a, c, "vars")["differ"] == 1


def test_parse_channel() -> None:
    """The guest's second serial port: gzip'd, base64'd blocks between markers."""
    body = base64.encodebytes(gzip.compress(b'{"x": 1}\n')).decode()
    text = (f"noise\r\n@@BEGIN stock rc=0 uptime=10.5..48.7\r\n{body}@@END stock\r\n"
            "@@BEGIN stock.stderr\r\n@@END stock.stderr\r\n")
    blocks = live.parse_channel(text)
    assert blocks["stock"]["rc"] == "0"
    assert blocks["stock"]["uptime"] == "10.5..48.7"
    assert blocks["stock"]["data"] == '{"x": 1}\n'
    assert blocks["stock.stderr"]["data"] == ""
