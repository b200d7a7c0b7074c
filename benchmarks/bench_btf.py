#!/usr/bin/env python3
"""Benchmark the BTF reader: pure Python, C accelerator, and libbpf's btf__parse.

    python3 benchmarks/bench_btf.py [--repeat N] [FILE.btf]

Without FILE, the committed sid (7.2) vmlinux BTF fixture (~5.4 MB) is used.
Two figures per reader, best of N runs:

* open + index: read the file, parse it, and build the name index
  (ours: ``Btf(data)`` + first ``find``; libbpf: ``btf__parse``, which
  has no name index to build);
* 1,000 lookups: find the ids of 1,000 names of the file (fixed random sample);
  ours: ``Btf.find``; libbpf: ``btf__find_by_name`` (a linear scan).

libbpf comes from Debian's libbpf1 through ctypes. Ratios are ours / libbpf.
Goals: open + index <= 10 ms with the accelerator, <= 250 ms in pure Python,
and <= 2x libbpf.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drgn_btfvars.btf import Btf  # noqa: E402
from drgn_btfvars.btf.reader import _ACCEL  # noqa: E402


def best(fn: Callable[[], object], repeat: int) -> Tuple[float, float]:
    """(best, median) wall time of fn() in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def load_libbpf() -> Optional[ctypes.CDLL]:
    for name in ("libbpf.so.1", ctypes.util.find_library("bpf")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        lib.btf__parse.restype = ctypes.c_void_p
        lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.btf__free.restype = None
        lib.btf__free.argtypes = [ctypes.c_void_p]
        lib.btf__find_by_name.restype = ctypes.c_int32
        lib.btf__find_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.btf__type_cnt.restype = ctypes.c_uint32
        lib.btf__type_cnt.argtypes = [ctypes.c_void_p]
        return lib
    return None


def default_file(tmp: Path) -> Path:
    import zstandard
    src = ROOT / "vmcores" / "sid" / "btf" / "vmlinux.btf.zst"
    out = tmp / "vmlinux-sid.btf"
    out.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(src.read_bytes()))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", nargs="?", help="a raw BTF file (default: sid vmlinux fixture)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        path = Path(args.file) if args.file else default_file(Path(d))
        size = path.stat().st_size
        ref = Btf(path.read_bytes(), accel=False)
        rng = random.Random(42)
        named = [i for i in rng.sample(range(1, ref.end_id), 5000) if ref.name(i)]
        names = [ref.name(i) for i in named[:1000]]
        print(f"{path} ({size / 1e6:.1f} MB, {len(ref)} types), best/median of {args.repeat} runs\n")

        rows = []
        for label, accel in (("pure Python", False), ("C accelerator", True)):
            if accel and _ACCEL is None:
                print("C accelerator: not built (pip install -e . with a C compiler)")
                continue

            def open_index(accel: bool = accel) -> Btf:
                b = Btf(path.read_bytes(), accel=accel)
                b.find("task_struct")
                return b

            b = open_index()
            o = best(open_index, args.repeat)
            lk = best(lambda b=b: [b.find(n) for n in names], args.repeat)
            rows.append((label, o, lk))

        lib = load_libbpf()
        lb = None
        if lib is None:
            print("libbpf: libbpf.so.1 not found (Debian package libbpf1)")
        else:
            cpath = str(path).encode()

            def lb_open() -> None:
                p = lib.btf__parse(cpath, None)
                if not p:
                    raise OSError(ctypes.get_errno(), "btf__parse failed")
                lib.btf__free(p)

            p = lib.btf__parse(cpath, None)
            if not p:
                print(f"libbpf: btf__parse failed (errno {ctypes.get_errno()})")
            else:
                assert lib.btf__type_cnt(p) == ref.end_id
                cnames = [n.encode() for n in names]
                # Sanity: libbpf finds the same first id as we do.
                for n, cn in zip(names[:50], cnames[:50]):
                    assert lib.btf__find_by_name(p, cn) == ref.find(n)[0]
                lo = best(lb_open, args.repeat)
                ll = best(lambda: [lib.btf__find_by_name(p, cn) for cn in cnames],
                          max(1, min(args.repeat, 3)))
                lib.btf__free(p)
                lb = (lo, ll)
                rows.append(("libbpf btf__parse", lo, ll))

        print(f"{'reader':<20} {'open+index ms':>14} {'(median)':>9} {'1000 finds ms':>14} "
              f"{'(median)':>9} {'open ratio':>11} {'finds ratio':>12}")
        for label, o, lk in rows:
            ro = f"{o[0] / lb[0][0]:.2f}x" if lb else "-"
            rl = f"{lk[0] / lb[1][0]:.2g}x" if lb else "-"
            print(f"{label:<20} {o[0] * 1e3:>14.1f} {o[1] * 1e3:>9.1f} {lk[0] * 1e3:>14.2f} "
                  f"{lk[1] * 1e3:>9.2f} {ro:>11} {rl:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
