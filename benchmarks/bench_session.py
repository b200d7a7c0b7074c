#!/usr/bin/env python3
"""Whole-session cost of drgn-btfvars against bare drgn and drgn + DWARF.

For each committed vmcore (or the keys given), in fresh processes:

``bare``
    ``program_from_core_dump()`` with this plugin disabled (drgn's own
    plugins load as usual): no types at all.
``btf``
    the same with this plugin auto-loaded (entry point), then ``prog["jiffies"]``;
    the per-build bootstrap cache is warm (a previous session on this kernel
    build filled it: no kallsyms load).
``btf-cold``
    the same with ``DRGN_BTFVARS_NO_CACHE=1``: drgn's kallsyms loader runs
    to find the BTF (a first session on a kernel build).
``dwarf``
    ``load_debug_info([the -dbg vmlinux])``, then
    ``prog["jiffies"]``, this plugin disabled (only where the -dbg package is
    unpacked in the cache;
    ``python3 vmcores/kernels.py <key> dbg`` fetches it).

Each mode runs ``--runs`` times (warm page cache), the modes taking turns;
the median wall time and peak RSS (the child's ``VmHWM``) are printed, with
the ratios the project's goals are stated in, and the overhead between the
fastest runs of each mode (less moved by the machine's other work). Then, in fresh processes (``--sweep-runs``
per side, the fastest kept), a sweep looks up every global the DWARF truth
types and times it (BTF vs DWARF).

Nothing here asserts a time: it prints measurements. The package's bytecode
is compiled first, as an installed package's is.

Usage: ``python3 benchmarks/bench_session.py [KEY ...] [--runs N] [--no-sweep]``
"""

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmcores import fixtures  # noqa: E402

CHILD = r"""
import os, sys, time
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
import drgn
prog = drgn.program_from_core_dump(path)
if mode == "dwarf":
    prog.load_debug_info([sys.argv[3]])
if mode != "bare":
    prog["jiffies"].value_()
elapsed = time.perf_counter() - t0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1])
print(elapsed, hwm)
"""

SWEEP = r"""
import json, os, sys, time
mode, path, names_file = sys.argv[1], sys.argv[2], sys.argv[3]
import drgn
prog = drgn.program_from_core_dump(path)
if mode == "dwarf":
    prog.load_debug_info([sys.argv[4]])
names = json.load(open(names_file))
prog["jiffies"]  # the first lookup's set-up is measured by the session benchmark
t0 = time.perf_counter()
found = errors = 0
for n in names:
    try:
        prog[n]
        found += 1
    except LookupError:
        pass
    except Exception:  # drgn's DWARF reader fails on a few (unknown DW_AT_const_value form)
        errors += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "found": found, "errors": errors,
                  "names": len(names)}))
"""


def run_child(code: str, args: List[str], env: Dict[str, str]) -> Tuple[float, int, str]:
    """Run ``python3 -c code args``; return (wall seconds, peak RSS KiB, stdout).

    The wall time is the whole process (interpreter start to exit). The peak
    RSS is the child's own ``VmHWM`` when it prints one as the last field of
    its first line (``wait4``'s ru_maxrss would count the forked copy of this
    benchmark process before exec).
    """
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    first = proc.stdout.split("\n", 1)[0].split()
    hwm = int(first[-1]) if len(first) == 2 else 0
    return wall, hwm, proc.stdout


def envs(key: str, tmp: Path) -> Dict[str, Dict[str, str]]:
    base = dict(os.environ)
    for var in ("DRGN_BTFVARS_DISABLE", "DRGN_BTFVARS_VARS", "DRGN_PLUGINS"):
        base.pop(var, None)
    # drgn's own plugins (commands) stay enabled in every mode; only ours is
    # switched off for "bare" and "dwarf".
    off = dict(base, DRGN_DISABLE_PLUGINS="btfvars")
    on = dict(base)
    on.pop("DRGN_DISABLE_PLUGINS", None)
    vf = fixtures.vars_btf_for_drgn(key, tmp)
    if vf is not None:
        on["DRGN_BTFVARS_VARS"] = str(vf)
    return {"bare": off, "btf": on, "btf-cold": dict(on, DRGN_BTFVARS_NO_CACHE="1"), "dwarf": off}


def bench_key(key: str, runs: int, sweep: bool, tmp: Path,
              sweep_runs: int = 3) -> Dict[str, object]:
    path = str(fixtures.vmcore_path(key))
    vmlinux = fixtures.debug_vmlinux(key)
    env = envs(key, tmp)
    result: Dict[str, object] = {"key": key}
    modes = ["bare", "btf", "btf-cold"] + (["dwarf"] if vmlinux else [])
    args = {mode: [mode, path] + ([str(vmlinux)] if mode == "dwarf" else []) for mode in modes}
    for mode in modes:
        run_child(CHILD, args[mode], env[mode])  # warm the page cache (and our bootstrap cache)
    # The modes take turns, so that the machine's drift between runs weighs
    # on each alike (in blocks, the overhead moved by +-10 ms between runs).
    samples: Dict[str, list] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode in modes:
            samples[mode].append(run_child(CHILD, args[mode], env[mode]))
    for mode in modes:
        result[mode] = {
            "wall_s": statistics.median(s[0] for s in samples[mode]),
            "min_wall_s": min(s[0] for s in samples[mode]),
            "rss_mib": statistics.median(s[1] for s in samples[mode]) / 1024,
        }
    if sweep:
        names = [v["name"] for v in fixtures.truth(key)["variables"]]
        nf = tmp / f"{key}-names.json"
        nf.write_text(json.dumps(names))
        for mode in ["btf"] + (["dwarf"] if vmlinux else []):
            args = [mode, path, str(nf)] + ([str(vmlinux)] if mode == "dwarf" else [])
            runs = [json.loads(run_child(SWEEP, args, env[mode])[2]) for _ in range(sweep_runs)]
            result[f"sweep_{mode}"] = min(runs, key=lambda r: r["seconds"])
    return result


def report(r: Dict[str, object]) -> str:
    lines = [f"== {r['key']}"]
    for mode in ("bare", "btf", "btf-cold", "dwarf"):
        if mode in r:
            m = r[mode]
            lines.append(f"  {mode:8s}  {m['wall_s'] * 1000:8.1f} ms  {m['rss_mib']:7.1f} MiB")
    bare, dwarf = r.get("bare"), r.get("dwarf")
    for label in ("btf", "btf-cold"):
        btf = r.get(label)
        if bare and btf:
            lines.append(f"  {label} overhead over bare drgn: "
                         f"{(btf['wall_s'] - bare['wall_s']) * 1000:+.1f} ms, "
                         f"{btf['rss_mib'] - bare['rss_mib']:+.1f} MiB "
                         f"(fastest runs: {(btf['min_wall_s'] - bare['min_wall_s']) * 1000:+.1f} ms)")
        if btf and dwarf:
            lines.append(f"  {label} / DWARF: time {btf['wall_s'] / dwarf['wall_s']:.2f}x, "
                         f"RSS {btf['rss_mib'] / dwarf['rss_mib']:.2f}x")
    sb, sd = r.get("sweep_btf"), r.get("sweep_dwarf")
    if sb:
        lines.append(f"  sweep BTF:   {sb['found']}/{sb['names']} globals in {sb['seconds']:.2f} s")
    if sd:
        lines.append(f"  sweep DWARF: {sd['found']}/{sd['names']} globals in {sd['seconds']:.2f} s")
    if sb and sd:
        lines.append(f"  sweep BTF / DWARF: {sb['seconds'] / sd['seconds']:.2f}x")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("keys", nargs="*", help="vmcore keys (default: all committed)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-runs", type=int, default=3,
                    help="sweeps per side, in fresh processes; the fastest is kept")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args(argv)
    keys = args.keys or fixtures.available()
    # An installed package has its bytecode compiled at install time (pip
    # does), drgn's included; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile this package's
    # sources in every child (~35 ms), which no user pays.
    compileall.compile_dir(str(REPO / "drgn_btfvars"), quiet=1)
    if not keys:
        print("no committed vmcores", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            r = bench_key(key, args.runs, not args.no_sweep, Path(tmp), args.sweep_runs)
            results.append(r)
            print(report(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
