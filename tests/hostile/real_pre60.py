#!/usr/bin/env python3
"""A real kernel older than 6.0 — Debian bullseye's 5.10 — dumped and checked
against its DWARF, kept out of the committed fixtures (made on demand into
the cache, never committed)::

    python3 tests/hostile/real_pre60.py build     # ~1 GB of packages, ~10 min
    python3 tests/hostile/real_pre60.py compare   # BTF + System.map vs DWARF
    python3 -m pytest tests/hostile/test_real_pre60.py   # the same, as a test

``build`` adds Debian bullseye to apt's sources (pinned at priority 80, as
``vmcores/apt-suites.sh`` does for trixie and sid), downloads the pinned
5.10 image and ``-dbg`` packages, boots and dumps the kernel with the
project's own pipeline functions (``vmcores/build.py``: the same initramfs,
QEMU command line and QMP dump as the committed fixtures), records the DWARF
truth with ``vmcores/truth.py`` (whose kallsyms come from the ``-dbg``
System.map: 5.10's VMCOREINFO has none), and generates a variable BTF with
``drgn-btfvars generate`` (pahole 1.30 from ``vmcores/toolroot.py``). All of
it goes to ``<cache>/hostile/bullseye/``.

``compare`` opens the dump with BTF only, the System.map given with
``kallsyms=``, and the variable BTF given as a file (5.10 cannot load the
fake module: module BTF needs 5.11), and compares with the truth.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "vmcores"))
sys.path.insert(0, str(REPO))

import kernels  # noqa: E402

KEY = "bullseye"
KERNEL = kernels.Kernel(KEY, "5.10.0-32-amd64", "5.10.223-1", "bullseye",
                        kernels._img("5.10.0-32-amd64", "5.10.223-1"))
SOURCES = Path("/etc/apt/sources.list.d/drgn-btfvars-bullseye.sources")
PREFS = Path("/etc/apt/preferences.d/drgn-btfvars-bullseye")


def workdir() -> Path:
    return kernels.cache_dir() / "hostile" / KEY


def system_map() -> Path:
    return (kernels.cache_dir() / "kernels" / KEY / "dbg" / "usr/lib/debug/boot"
            / f"System.map-{KERNEL.release}")


def paths() -> Dict[str, Path]:
    w = workdir()
    return {"vmcore": w / "vmcore", "truth": w / "truth.json.zst", "vars": w / "vars.btf"}


def ready() -> bool:
    """Whether ``build`` has run (the dbg package is unpacked too)."""
    dbg = kernels.cache_dir() / "kernels" / KEY / "dbg" / ".done"
    return dbg.exists() and all(p.exists() for p in paths().values())


def add_suite() -> None:
    if not SOURCES.exists():
        SOURCES.write_text("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bullseye\n"
                           "Components: main\n"
                           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        PREFS.write_text("Package: *\nPin: release n=bullseye\nPin-Priority: 80\n")
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=900)


def build() -> None:
    import build as vbuild  # vmcores/build.py
    import truth as vtruth  # vmcores/truth.py

    add_suite()
    kernels.KERNELS[KEY] = KERNEL  # in this process only: vmcores/kernels.py is not changed
    vbuild.ensure_host_tools()
    for role in KERNEL.packages:
        kernels.unpack(KEY, role)
    w = workdir()
    w.mkdir(parents=True, exist_ok=True)
    initrd, mods = vbuild.build_initramfs(KERNEL, w, [])
    serial, qmp, dump = w / "serial.raw.log", w / "qmp.sock", paths()["vmcore"]
    args = vbuild.qemu_args(KERNEL, initrd, serial, qmp, vbuild.DEFAULT_MEMORY)
    print("boot and dump:", vbuild.boot_and_dump(args, serial, qmp, dump, expect_extra=False))
    # The truth: drgn + DWARF, with kallsyms from the -dbg System.map.
    import drgn.helpers.linux.kallsyms as drgn_kallsyms

    from drgn_btfvars import symfile
    from vmcores import fixtures

    info = fixtures.vmcoreinfo(dump)
    drgn_kallsyms.load_vmlinux_kallsyms = lambda prog: symfile.load_symbol_file(system_map(),
                                                                                info)[0]
    vtruth.no_plugins()
    vtruth.write(vtruth.generate(KEY, dump, KERNEL.debug_vmlinux()), paths()["truth"])
    pahole = subprocess.run([sys.executable, str(REPO / "vmcores" / "toolroot.py"), "trixie",
                             "pahole", "--argv"], check=True, capture_output=True, text=True,
                            timeout=1800).stdout.strip()
    subprocess.run([sys.executable, "-m", "drgn_btfvars.cli", "generate", "--vmlinux",
                    str(KERNEL.debug_vmlinux()), "-o", str(paths()["vars"]),
                    "--btf-features", "var,global_var"],
                   env=dict(os.environ, DRGN_BTFVARS_PAHOLE=pahole), check=True, timeout=1800)


def compare() -> Dict[str, Any]:
    """Counts of the comparison with the DWARF truth (and the message
    without a symbol file)."""
    import drgn
    from drgn import FindObjectFlags
    from drgn.helpers.linux.pid import for_each_task

    import drgn_btfvars
    from drgn_btfvars import verify
    from drgn_btfvars.btf import BtfError
    from vmcores import truth as vtruth

    os.environ["DRGN_BTFVARS_NO_CACHE"] = "1"
    truth = vtruth.load(paths()["truth"])
    out: Dict[str, Any] = {}

    prog = drgn.Program()
    prog.set_core_dump(str(paths()["vmcore"]))
    kb = drgn_btfvars.enable(prog)
    kb.kallsyms()
    out["without_file"] = kb.warnings[0]

    prog = drgn.Program()
    prog.set_core_dump(str(paths()["vmcore"]))
    t0 = time.monotonic()
    kb = drgn_btfvars.enable(prog, kallsyms=system_map(), vars_btf=paths()["vars"])
    kb.kallsyms()
    out["kallsyms"] = kb.status()["kallsyms"]
    out["symbol_file_s"] = round(time.monotonic() - t0, 2)

    def refused(fn):  # a BtfError is a refusal (an enum of unknown signedness): not found
        def wrapper(*args):
            try:
                return fn(*args)
            except BtfError:
                return [] if fn is not func else None
        return wrapper

    def func(name):
        obj = kb.object_finder(prog, name, FindObjectFlags.FUNCTION, None)
        if obj is not None:
            obj.type_.type_name()
        return obj

    layout = verify._compare_layout

    def top_layout(t, b, depth=0):
        try:
            return layout(t, b, depth)
        except BtfError as e:
            if depth:
                raise
            return "not_found", f"refused: {e}"

    verify._compare_layout = top_layout
    try:
        reports = [
            verify.compare_variables(truth["variables"], refused(kb.variables)),
            verify.compare_types(truth["types"], refused(kb.types_named)),
            verify.compare_enums(truth["enums"], refused(kb.types_named)),
            verify.compare_functions(truth["functions"], refused(func)),
        ]
    finally:
        verify._compare_layout = layout
    for r in reports:
        out[r.what] = {b: r.count(b) for b in r.BUCKETS}
        out[r.what]["mismatched_reasons"] = r.reasons("mismatched")
    same = differ = 0
    rows = {(r["pid"], r["comm"]): r for r in truth["tasks"]}
    for task in for_each_task(prog):
        row = rows.get((task.pid.value_(), task.comm.string_().decode()))
        if row is None or "pcs" not in row:
            continue
        inline = set(row.get("inline", []))
        want = [pc for i, pc in enumerate(row["pcs"]) if i not in inline]
        got = [f.pc for f in prog.stack_trace(task)]
        kernel = [[pc for pc in pcs[:next((i for i, pc in enumerate(pcs) if not pc >> 63),
                                          len(pcs))]] for pcs in (want, got)]
        same, differ = (same + 1, differ) if kernel[0] == kernel[1] else (same, differ + 1)
    out["tasks"] = {"same kernel stack PCs": same, "different": differ}
    out["refused enums"] = [w for w in kb.warnings if "predates signed enums" in w]
    return out


def main(argv) -> int:
    if argv[1:] == ["build"]:
        build()
        return 0
    if argv[1:] == ["compare"]:
        if not ready():
            print("run 'python3 tests/hostile/real_pre60.py build' first", file=sys.stderr)
            return 2
        print(json.dumps(compare(), indent=1))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
