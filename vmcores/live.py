#!/usr/bin/env python3
"""A live kernel in a QEMU guest with no debug info: drgn -k + this plugin, compared with a dump.

One command per kernel key (``bookworm``, ``trixie``, ``sid``; x86-64 only)::

    python3 vmcores/live.py [KEY ...] [--memory 2G] [--timeout 1500] [--keep-dump]

Steps, each bounded in time:

1. The guest's root file system, built once and cached in
   ``<cache>/live/rootfs.cpio`` (``<cache>`` is ``~/.cache/drgn-btfvars``): a
   ``debootstrap --variant=minbase`` Debian trixie with ``python3`` (3.13) and
   ``kmod``, plus drgn, pyelftools, cffi and pycparser installed from PyPI wheels
   for CPython 3.13 (pinned in :data:`WHEELS`; fetched on the host with ``pip
   download``, unpacked with ``pip install --target``). debootstrap is installed
   from bookworm when missing. Documentation and apt lists are removed. The
   build fails if the tree holds any kernel debug info (``/usr/lib/debug``, a
   ``vmlinux``, a ``.ko``, an ELF file with ``.debug_info`` other than drgn's own
   extension and the libraries its wheel bundles, which carry their own DWARF).
2. This project, installed from the working tree (tracked and untracked files,
   as ``git ls-files -co --exclude-standard`` lists them): a wheel built with a
   host CPython 3.13 (pyenv's, or ``python3.13`` on ``PATH``), so that the cffi
   accelerator is compiled for the guest's Python; without one, the pure-Python
   reader is installed and the report says so. Plus :mod:`live_check` and the
   guest's ``/init``, in a second cpio.
3. A third cpio per kernel: the stock modules :mod:`build` loads in its guests
   (``qemu_fw_cfg``, loop, ext4 and its dependencies, cdrom, isofs), a 4 MiB ext4
   image, and ``btf_global_variables.ko`` from ``<cache>/fakemod/<key>/``
   (``python3 vmcores/toolroot.py fakemod <key>``).
4. The three are concatenated into one initramfs and booted with
   :func:`build.qemu_args` (TCG, 2 vCPUs, KASLR on) plus a second serial port.
   ``/init`` loads the stock modules, mounts the ext4 image on a loop device,
   starts three sleeping processes (``lsleep`` ×2, ``lfifo`` blocked opening a
   FIFO), then runs ``python3 live_check.py --phase stock`` (nothing typed but
   what BTF has), ``insmod btf_global_variables.ko``, checks that
   ``/sys/kernel/btf/btf_global_variables`` exists (insmod's status proves
   nothing on 6.1/6.12), and runs ``--phase vars``. Each run's JSON goes out
   gzip'd and base64'd between markers on the second serial port, then the
   guest prints the marker :func:`build.boot_and_dump` waits for, and is dumped
   over QMP exactly like the fixtures.
5. On the host, ``live_check.py --core DUMP`` runs on the dump (BTF only, the
   plugin auto-loaded; ``DRGN_BTFVARS_NO_FAKE_MODULE=1`` for the stock phase),
   and :func:`compare` compares item by item. The report goes to
   ``<cache>/live/<key>/report.json``, and the summary to stdout.

No step installs anything on the machine but debootstrap; only the QEMU this
script started is ever ended, by its pid.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402
import kernels  # noqa: E402

__all__ = ("build_rootfs", "build_app", "build_kernel_layer", "run", "compare", "main")

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
DEB_PACKAGES = ("python3", "kmod")
GUEST_PYTHON = "3.13"
#: PyPI wheels installed in the guest (the host's versions of the same packages).
WHEELS = ("drgn==0.3.0", "pyelftools==0.33", "cffi==2.0.0", "pycparser==3.0")
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
#: drgn's own extension and libraries bundled in its wheel carry their own
#: DWARF (of user-space code: not kernel debug info).
BUNDLED_WITH_DWARF = re.compile(r"usr/local/lib/python3\.\d+/dist-packages/(drgn\.libs/|_drgn\.)")
SITE = f"usr/local/lib/python{GUEST_PYTHON}/dist-packages"

DEFAULT_MEMORY = "2G"   # the tmpfs root gets half of it; the rootfs is ~200 MiB
DEFAULT_TIMEOUT = 1500  # seconds for the whole guest run (boot + both phases) under TCG
PHASE_TIMEOUT = 600     # seconds for one live_check.py run inside the guest
T_DEBOOTSTRAP = 1800
T_PIP = 900
T_HOST_CHECK = 900

READY = build.MARKER
EXTRA_OK = build.EXTRA_OK
STABLE_COMMANDS = {"lsleep": "/usr/bin/sleep", "lfifo": "/usr/bin/cat"}

log = build.log


def live_dir() -> Path:
    """``<cache>/live``."""
    d = kernels.cache_dir() / "live"
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------- rootfs

def ensure_debootstrap() -> str:
    """The debootstrap binary, installed from bookworm when missing."""
    found = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if found:
        return found
    log("installing debootstrap")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "debootstrap/bookworm"], env=env, check=True, timeout=build.T_APT)
    return build.tool("debootstrap")


def _pip_platform_args() -> List[str]:
    args = ["--only-binary=:all:", "--python-version", GUEST_PYTHON, "--implementation", "cp",
            "--abi", "cp" + GUEST_PYTHON.replace(".", "")]
    for p in WHEEL_PLATFORMS:
        args += ["--platform", p]
    return args


def debug_info_report(root: Path) -> Dict[str, Any]:
    """What in a tree could be kernel debug info; raises if any is."""
    from elftools.elf.elffile import ELFFile

    problems: List[str] = []
    bundled: List[str] = []
    elf_files = 0
    if (root / "usr/lib/debug").exists() and any((root / "usr/lib/debug").rglob("*")):
        problems.append("usr/lib/debug is not empty")
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = Path(dirpath, fn)
            rel = str(p.relative_to(root))
            if fn.startswith("vmlinux") or fn.endswith((".ko", ".ko.xz", ".ko.zst", ".debug")):
                problems.append(rel)
                continue
            if p.is_symlink() or not p.is_file():
                continue
            with open(p, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
                elf_files += 1
                f.seek(0)
                try:
                    names = {s.name for s in ELFFile(f).iter_sections()}
                except Exception:
                    continue
            if ".debug_info" in names:
                (bundled if BUNDLED_WITH_DWARF.match(rel) else problems).append(rel)
    if problems:
        raise RuntimeError(f"debug info in the guest's root file system: {problems[:10]}")
    return {"elf_files": elf_files, "with_dwarf_bundled_by_drgn": sorted(bundled)}


def build_rootfs(force: bool = False) -> Tuple[Path, Dict[str, Any]]:
    """``<cache>/live/rootfs.cpio`` (built once) and its description."""
    d = live_dir()
    cpio_path, info_path = d / "rootfs.cpio", d / "rootfs.json"
    recipe = {"suite": SUITE, "variant": "minbase", "packages": list(DEB_PACKAGES),
              "wheels": list(WHEELS), "python": GUEST_PYTHON, "pyc": "unchecked-hash"}
    if not force and cpio_path.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("recipe") == recipe:
            return cpio_path, info
    t0 = time.monotonic()
    root = d / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    debootstrap = ensure_debootstrap()
    log(f"debootstrap --variant=minbase {SUITE} (a few minutes)")
    with open(d / "debootstrap.log", "wb") as out:
        subprocess.run([debootstrap, "--variant=minbase", "--include=" + ",".join(DEB_PACKAGES),
                        SUITE, str(root), MIRROR], stdout=out, stderr=subprocess.STDOUT,
                       check=True, timeout=T_DEBOOTSTRAP)
    for sub in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf", "var/log"):
        p = root / sub
        if p.exists():
            shutil.rmtree(p)
            p.mkdir(parents=True)
    wheels = d / "wheels"
    wheels.mkdir(exist_ok=True)
    log(f"pip download {' '.join(WHEELS)} (cp{GUEST_PYTHON})")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    *_pip_platform_args(), "-d", str(wheels), *WHEELS], check=True, timeout=T_PIP)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    *_pip_platform_args(), "--target", str(root / SITE), "--no-index",
                    "--find-links", str(wheels), *WHEELS], check=True, timeout=T_PIP)
    shutil.rmtree(root / SITE / "bin", ignore_errors=True)  # scripts with the host's shebang
    # The cpio gives every file mtime 0, which makes timestamp-checked .pyc files stale:
    # the guest would recompile the standard library and drgn on every boot.
    subprocess.run(["chroot", str(root), "python3", "-m", "compileall", "-q", "-f",
                    "--invalidation-mode", "unchecked-hash", f"/usr/lib/python{GUEST_PYTHON}",
                    "/usr/lib/python3/dist-packages", "/" + SITE],
                   stdout=subprocess.DEVNULL, timeout=T_PIP)
    py = subprocess.run(["chroot", str(root), "python3", "-c",
                         "import sys, drgn, elftools, cffi; print(sys.version.split()[0], "
                         "drgn.__version__)"], capture_output=True, text=True, timeout=120)
    if py.returncode != 0:
        raise RuntimeError(f"the guest's python cannot import drgn: {py.stderr[-2000:]}")
    dbg = debug_info_report(root)
    log("packing rootfs.cpio")
    data = pack_tree(root)
    tmp = cpio_path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cpio_path)
    info = {"recipe": recipe, "python_drgn": py.stdout.strip(), "debug_info": dbg,
            "bytes": len(data), "seconds": round(time.monotonic() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    log(f"rootfs.cpio {len(data) >> 20} MiB in {info['seconds']} s")
    return cpio_path, info


def pack_tree(root: Path) -> bytes:
    """A directory tree as a newc cpio (device nodes skipped: the guest mounts devtmpfs)."""
    c = build.Cpio()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir != ".":
            c.dir(rel_dir)
        for fn in sorted(filenames) + [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]:
            p = os.path.join(dirpath, fn)
            rel = os.path.normpath(os.path.join(rel_dir, fn))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                c.symlink(rel, os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    c.file(rel, f.read(), stat.S_IMODE(st.st_mode))
        dirnames[:] = [n for n in dirnames if not os.path.islink(os.path.join(dirpath, n))]
    return c.finish()


# --------------------------------------------------------------------------- project layer

def host_python313() -> Optional[str]:
    """A host CPython of the guest's version, to build the accelerator for it."""
    name = f"python{GUEST_PYTHON}"
    found = shutil.which(name)
    candidates = [found] if found else []
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / name) for p in sorted(pyenv.glob(GUEST_PYTHON + ".*"))]
    for c in candidates:
        if c and Path(c).exists():
            r = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0 and "shims" not in c:
                return c
    return None


INIT = r"""#!/bin/sh
# The live guest's /init (vmcores/live.py): modules, sleeping processes, two
# runs of live_check.py, then wait to be dumped.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /mnt/ext4
mount -t tmpfs -o size=64m run /run
echo "@@ kernel $(uname -r)"
for m in $(cat /live/modules/order); do
    insmod /live/modules/$m.ko || echo "@@ insmod FAILED $m"
done
rm -rf /live/modules
mount -t ext4 -o loop /live/disk.img /mnt/ext4 || echo "@@ ext4 mount FAILED"
echo 'written by the drgn-btfvars live harness' > /mnt/ext4/hello.txt
mkfifo /run/fifo
lfifo /run/fifo > /dev/null &
lsleep 1000001 &
lsleep 1000002 &
sync
echo "@@ /sys/kernel/btf: $(ls /sys/kernel/btf | tr '\n' ' ')"
echo "@@ debug info: $(ls -d /usr/lib/debug/* /boot/vmlinux* /lib/modules/*/build 2>/dev/null | wc -l) paths"
phase() {
    name=$1; shift
    t0=$(cut -d' ' -f1 /proc/uptime)
    env "$@" timeout @PHASE_TIMEOUT@ python3 /live/live_check.py --phase $name > /run/$name.json 2> /run/$name.err
    rc=$?
    t1=$(cut -d' ' -f1 /proc/uptime)
    {
        echo "@@BEGIN $name rc=$rc uptime=$t0..$t1"
        gzip -c /run/$name.json | base64
        echo "@@END $name"
        echo "@@BEGIN $name.stderr"
        tail -c 50000 /run/$name.err | gzip -c | base64
        echo "@@END $name.stderr"
    } > /dev/ttyS1
    echo "@@ phase $name rc=$rc from $t0 to $t1"
    rm -f /run/$name.json /run/$name.err
}
phase stock
insmod /live/btf_global_variables.ko || echo "@@ insmod FAILED btf_global_variables"
if [ -e /sys/kernel/btf/btf_global_variables ]; then echo "@EXTRA_OK@"; else echo "@@ btf_global_variables BTF MISSING"; fi
phase vars
sync
echo "@READY@"
while :; do sleep 3600; done
"""


def build_app(work: Path) -> Tuple[Path, Dict[str, Any]]:
    """The project layer: this checkout installed for the guest's Python, live_check.py, /init."""
    t0 = time.monotonic()
    info: Dict[str, Any] = {}
    head = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    info["checkout"] = head
    with tempfile.TemporaryDirectory(prefix="live-app-") as tmp:
        src, stage, whl = Path(tmp, "src"), Path(tmp, "stage"), Path(tmp, "wheel")
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                               capture_output=True, check=True, timeout=60).stdout.split(b"\0")
        for f in files:
            name = f.decode()
            if not name or name.startswith("vmcores/") or not (REPO / name).is_file():
                continue
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
        py = host_python313()
        if py is not None:
            subprocess.run([py, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(whl), str(src)],
                           check=True, timeout=T_PIP)
            wheel = next(whl.glob("*.whl"))
            subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                            "--target", str(stage), str(wheel)], check=True, timeout=T_PIP)
            info["wheel"] = wheel.name
            subprocess.run([py, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                            str(stage)], check=True, timeout=T_PIP)  # see build_rootfs()
        else:
            # No CPython 3.13 here: pure Python (the reader falls back by itself).
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                            "--target", str(stage), str(src)], check=True, timeout=T_PIP)
            for so in stage.rglob("*.so"):
                so.unlink()
            info["wheel"] = None
        shutil.rmtree(stage / "bin", ignore_errors=True)
        info["accelerator_built"] = any(stage.rglob("_accel*.so"))
        c = build.Cpio()
        for d in ("live", "usr", "usr/local", "usr/local/lib", f"usr/local/lib/python{GUEST_PYTHON}",
                  SITE, "usr/local/bin"):
            c.dir(d)
        for dirpath, dirnames, filenames in os.walk(stage):
            dirnames.sort()
            rel = os.path.relpath(dirpath, stage)
            if rel != ".":
                c.dir(f"{SITE}/{rel}")
            for fn in sorted(filenames):
                p = Path(dirpath, fn)
                c.file(os.path.normpath(f"{SITE}/{rel}/{fn}"), p.read_bytes(),
                       stat.S_IMODE(p.stat().st_mode))
    c.file("live/live_check.py", (HERE / "live_check.py").read_bytes(), 0o755)
    for name, target in STABLE_COMMANDS.items():
        c.symlink(f"usr/local/bin/{name}", target)  # comm is the name exec'd
    init = (INIT.replace("@PHASE_TIMEOUT@", str(PHASE_TIMEOUT)).replace("@READY@", READY)
            .replace("@EXTRA_OK@", EXTRA_OK))
    c.file("init", init.encode(), 0o755)
    out = work / "app.cpio"
    out.write_bytes(c.finish())
    info["seconds"] = round(time.monotonic() - t0, 1)
    return out, info


# --------------------------------------------------------------------------- kernel layer

def fake_module(key: str) -> Path:
    """The cached ``btf_global_variables.ko`` of a kernel."""
    return kernels.cache_dir() / "fakemod" / key / "btf_global_variables.ko"


def stock_modules(tree: build.ModuleTree) -> List[str]:
    """:data:`build.STOCK_MODULES` that exist as modules, in load order."""
    wanted = []
    for alts in build.STOCK_MODULES:
        for name in alts:
            if name in tree.paths:
                wanted.append(name)
                break
        else:
            if alts[0] in build.REQUIRED_MODULES and not any(a in tree.builtin for a in alts):
                raise RuntimeError(f"required module {alts[0]} not found")
    return tree.load_order(wanted)


def build_kernel_layer(k: kernels.Kernel, work: Path) -> Tuple[Path, Dict[str, Any]]:
    """Modules, the fake module and an ext4 image for kernel ``k``."""
    tree = build.ModuleTree(k.modules_dir(), k.release)
    ko = fake_module(k.key)
    if not ko.exists():
        raise FileNotFoundError(f"{ko} (python3 vmcores/toolroot.py fakemod {k.key})")
    deps = [d for d in build.modinfo_depends(ko) if d in tree.paths]
    order = tree.load_order(stock_modules(tree) + deps)
    c = build.Cpio()
    for d in ("live", "live/modules"):
        c.dir(d)
    for m in order:
        c.file(f"live/modules/{m}.ko", tree.read(m))
    c.file("live/modules/order", ("\n".join(order) + "\n").encode())
    c.file("live/btf_global_variables.ko", ko.read_bytes())
    img = work / "disk.img"
    build.make_ext4_image(img)
    c.file("live/disk.img", img.read_bytes())
    out = work / "kernel.cpio"
    out.write_bytes(c.finish())
    return out, {"modules": order, "fake_module": str(ko), "fake_module_sha256": build.sha256_file(ko)}


# --------------------------------------------------------------------------- results

def parse_channel(text: str) -> Dict[str, Dict[str, Any]]:
    """The blocks the guest wrote on its second serial port."""
    out: Dict[str, Dict[str, Any]] = {}
    text = text.replace("\r", "")
    for m in re.finditer(r"^@@BEGIN (\S+)([^\n]*)\n(.*?)^@@END \1$", text, re.S | re.M):
        name, attrs, body = m.group(1), m.group(2), m.group(3)
        block: Dict[str, Any] = dict(re.findall(r"(\w+)=(\S+)", attrs))
        raw = gzip.decompress(base64.b64decode("".join(body.split()))) if body.strip() else b""
        block["data"] = raw.decode(errors="replace")
        out[name] = block
    return out


# Items that legitimately exist on one side only (see compare()).
def _one_sided_ok(phase: str, check: str, item: str) -> bool:
    if check == "cli":
        return False
    if "btf_global_variables" in item:
        # The stock phase runs before the fake module is loaded; the dump has it.
        return phase == "stock"
    return False


def _normalize(check: str, item: str, value: Any) -> Any:
    if check == "cli" and isinstance(value, dict):
        # The run time and the target option (-k or -c) differ by design.
        return {k: v for k, v in value.items() if k not in ("seconds", "stderr")}
    return value


def compare(live: Dict[str, Any], dump: Dict[str, Any], phase: str) -> Dict[str, Any]:
    """Item-by-item comparison of two live_check.py outputs.

    Returns per check: items compared, equal, differing (with both values),
    items found on one side only (and whether that is expected), and errors
    (items both sides could not answer: compared, but not counted as checked
    answers)."""
    report: Dict[str, Any] = {"checks": {}, "differ": 0, "equal": 0, "answers": 0,
                              "unexpected_one_sided": 0}
    for check in sorted(set(live["checks"]) | set(dump["checks"])):
        a, b = live["checks"].get(check, {}), dump["checks"].get(check, {})
        row: Dict[str, Any] = {"compared": 0, "equal": 0, "answers": 0, "errors_both": 0,
                               "differ": [], "only_live": [], "only_dump": []}
        for item in sorted(set(a) | set(b)):
            if item not in b or item not in a:
                side = "only_live" if item not in b else "only_dump"
                row[side].append(item)
                if not _one_sided_ok(phase, check, item):
                    report["unexpected_one_sided"] += 1
                continue
            va, vb = _normalize(check, item, a[item]), _normalize(check, item, b[item])
            row["compared"] += 1
            if va == vb:
                row["equal"] += 1
                if isinstance(va, dict) and "error" in va and len(va) == 1:
                    row["errors_both"] += 1
                else:
                    row["answers"] += 1
            else:
                row["differ"].append({"item": item, "live": va, "dump": vb})
        report["checks"][check] = row
        report["equal"] += row["equal"]
        report["answers"] += row["answers"]
        report["differ"] += len(row["differ"])
    return report


def host_check(dump: Path, phase: str, out: Path) -> Dict[str, Any]:
    """live_check.py on the dump, on the host: BTF only, the plugin through its entry point."""
    env = dict(os.environ)
    for var in ("DRGN_BTFVARS_DISABLE", "DRGN_DISABLE_PLUGINS", "DRGN_BTFVARS_VARS"):
        env.pop(var, None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if phase == "stock":
        env["DRGN_BTFVARS_NO_FAKE_MODULE"] = "1"
    else:
        env.pop("DRGN_BTFVARS_NO_FAKE_MODULE", None)
    r = subprocess.run([sys.executable, str(HERE / "live_check.py"), "--core", str(dump),
                        "--phase", phase], env=env, capture_output=True, text=True,
                       timeout=T_HOST_CHECK)
    out.write_text(r.stdout)
    if r.returncode != 0:
        raise RuntimeError(f"live_check.py on the dump ({phase}) failed: {r.stderr[-3000:]}")
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- one kernel

def run(key: str, memory: str = DEFAULT_MEMORY, timeout: int = DEFAULT_TIMEOUT,
        keep_dump: bool = False, rebuild_rootfs: bool = False, reuse: bool = False) -> Dict[str, Any]:
    """The whole harness for one kernel key; returns (and writes) the report.

    ``reuse``: do not boot; compare the previous guest run (``channel.log``) with
    its kept dump again (after ``keep_dump``)."""
    k = kernels.KERNELS[key]
    if getattr(k, "arch", "amd64") != "amd64":
        raise ValueError(f"{key}: the live harness boots x86-64 kernels only")
    t_start = time.monotonic()
    log(f"== live {key}: {k.release}")
    work = live_dir() / key
    work.mkdir(parents=True, exist_ok=True)
    console, channel, qmp, dump = (work / "console.log", work / "channel.log", work / "qmp.sock",
                                   work / "vmcore")
    if reuse:
        if not dump.exists():
            raise FileNotFoundError(f"{dump}: run once with --keep-dump first")
        prev = json.loads((work / "guest.json").read_text())
        return _compare_run(key, k, work, prev, channel, dump, keep_dump=True, t_start=t_start)
    rootfs, rootfs_info = build_rootfs(force=rebuild_rootfs)
    app, app_info = build_app(work)
    layer, layer_info = build_kernel_layer(k, work)
    initrd = work / "initramfs.cpio"
    with open(initrd, "wb") as out:
        for part in (rootfs, app, layer):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    log(f"initramfs {initrd.stat().st_size >> 20} MiB (rootfs + project {app_info['checkout']} "
        f"+ {len(layer_info['modules'])} modules + btf_global_variables.ko)")
    for p in (channel,):
        if p.exists():
            p.unlink()
    args = build.qemu_args(k, initrd, console, qmp, memory) + ["-serial", f"file:{channel}"]
    # boot_and_dump waits build.T_BOOT seconds for the marker; the guest runs both
    # phases before printing it.
    saved = build.T_BOOT
    build.T_BOOT = timeout
    try:
        timings = build.boot_and_dump(args, console, qmp, dump, expect_extra=True)
    finally:
        build.T_BOOT = saved
    guest = {"key": key, "release": k.release, "memory": memory, "rootfs": rootfs_info,
             "project": app_info, "kernel_layer": layer_info, "qemu_timings_s": timings,
             "console": build.clean_serial(console.read_text(errors="replace"))}
    (work / "guest.json").write_text(json.dumps(guest, indent=1) + "\n")
    return _compare_run(key, k, work, guest, channel, dump, keep_dump, t_start)


def _compare_run(key: str, k: kernels.Kernel, work: Path, guest: Dict[str, Any], channel: Path,
                 dump: Path, keep_dump: bool, t_start: float) -> Dict[str, Any]:
    """Parse the guest's results, run the checks on the dump, compare, write the report."""
    blocks = parse_channel(channel.read_text(errors="replace"))
    report: Dict[str, Any] = dict(guest, phases={})
    m = re.search(r"^@@ debug info: (\d+) paths", guest.get("console", ""), re.M)
    # /usr/lib/debug/*, /boot/vmlinux*, /lib/modules/*/build as the guest saw them.
    report["guest_debug_paths"] = int(m.group(1)) if m else None
    try:
        for phase in ("stock", "vars"):
            blk = blocks.get(phase)
            err = blocks.get(phase + ".stderr", {}).get("data", "")
            if blk is None or blk.get("rc") != "0" or not blk["data"].strip():
                raise RuntimeError(f"the guest's {phase} run failed (rc={blk and blk.get('rc')}): "
                                   f"{err[-3000:]}")
            (work / f"live-{phase}.json").write_text(blk["data"])
            live = json.loads(blk["data"])
            t = time.monotonic()
            host = host_check(dump, phase, work / f"dump-{phase}.json")
            host_s = round(time.monotonic() - t, 1)
            cmp = compare(live, host, phase)
            t0, _, t1 = blk.get("uptime", "..").partition("..")
            report["phases"][phase] = {
                "guest_uptime_s": [float(t0), float(t1)] if t0 and t1 else None,
                "guest_seconds": round(float(t1) - float(t0), 1) if t0 and t1 else None,
                "guest_timings_s": live["timings"], "host_timings_s": host["timings"],
                "host_seconds": host_s,
                "live_meta": {k2: v for k2, v in live["meta"].items() if k2 != "status"},
                "live_status": live["meta"].get("status"),
                "dump_meta": {k2: v for k2, v in host["meta"].items() if k2 != "status"},
                "guest_stderr": err[-2000:],
                "comparison": cmp,
            }
            log(f"{key} {phase}: {cmp['answers']} answers equal (+{cmp['equal'] - cmp['answers']} "
                f"equal errors), {cmp['differ']} differ, {cmp['unexpected_one_sided']} unexpected "
                f"one-sided; in the guest {report['phases'][phase]['guest_seconds']} s")
    finally:
        if not keep_dump and dump.exists():
            dump.unlink()
    report["total_s"] = round(time.monotonic() - t_start, 1)
    (work / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    log(f"== {key} done in {report['total_s']} s; report {work / 'report.json'}")
    return report


def cached_keys() -> List[str]:
    """x86-64 kernel keys whose image, modules and fake module are in the cache."""
    out = []
    for key, k in kernels.KERNELS.items():
        if getattr(k, "arch", "amd64") != "amd64":
            continue
        roles = ["image"] + (["modules"] if "modules" in k.packages else [])
        if all((kernels.cache_dir() / "kernels" / key / r / ".done").exists() for r in roles) \
                and fake_module(key).exists():
            out.append(key)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keys", nargs="*", metavar="KEY",
                    help="x86-64 kernels (default: every one whose artifacts are cached)")
    ap.add_argument("--memory", default=DEFAULT_MEMORY, help=f"guest memory (default {DEFAULT_MEMORY})")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                    help=f"seconds for boot + both guest runs (default {DEFAULT_TIMEOUT})")
    ap.add_argument("--keep-dump", action="store_true", help="keep <cache>/live/<key>/vmcore")
    ap.add_argument("--rebuild-rootfs", action="store_true", help="rebuild the cached root file system")
    ap.add_argument("--reuse", action="store_true",
                    help="do not boot: compare the last guest run with its kept dump again")
    a = ap.parse_args(argv)
    keys = a.keys or cached_keys()
    for key in keys:
        if key not in kernels.KERNELS:
            ap.error(f"unknown kernel {key!r}")
    build.ensure_host_tools()
    failed = []
    for i, key in enumerate(keys):
        try:
            r = run(key, a.memory, a.timeout, a.keep_dump, a.rebuild_rootfs and i == 0, a.reuse)
            bad = sum(p["comparison"]["differ"] + p["comparison"]["unexpected_one_sided"]
                      for p in r["phases"].values())
            if bad:
                failed.append(key)
        except Exception as e:
            log(f"!! {key} FAILED: {type(e).__name__}: {e}")
            failed.append(key)
    if failed:
        log(f"failed or differing: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
