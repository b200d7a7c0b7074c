"""Build the committed vmcore fixtures: boot real Debian kernels, dump them, record DWARF truth.

One command does everything for each kernel key (``bookworm``, ``trixie``,
``sid``; all of them when none is given)::

    python3 vmcores/build.py [KEY ...] [--extra-module KEY=PATH.ko ...] [--memory 256M]

Steps, each bounded in time:

1. Install the host tools it needs from bookworm (``qemu-system-x86``,
   ``busybox-static``, ``kmod``, ``zstd``, ``e2fsprogs``; for arm64 kernels
   ``qemu-system-arm`` and the aarch64 cross gcc and binutils) when missing.
   The busybox of a foreign-architecture guest is a package of the kernel's
   (:meth:`kernels.Kernel.busybox`).
2. Fetch and unpack the pinned kernel packages (:mod:`kernels`), never installing them.
3. Make an initramfs: static busybox, a few real modules (``qemu_fw_cfg`` so that
   ``-device vmcoreinfo`` works, plus ordinary BTF-carrying ones: loop, ext4 and its
   dependencies, isofs, ...), a small ext4 image to mount on a loop device, and an
   ``/init`` that loads the modules, then any ``--extra-module`` (after the stock ones,
   dependencies first), lists ``/sys/kernel/btf/`` on the console, mounts, starts a few
   named processes, drops caches and prints a marker line.
4. Boot with ``qemu-system-x86_64`` under TCG (``-cpu max,la57=off``, 2 vCPUs, KASLR on),
   or for an arm64 kernel ``qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on`` (see
   :data:`GUEST_ARCHES`),
   wait for the marker on the serial log, then over QMP ``stop`` +
   ``dump-guest-memory`` (ELF, no paging) + ``quit``.  Only the QEMU this script started
   is ever ended, by its pid.
5. Compress the dump (``zstd -19 --long=27``), generate the ground truth with
   :mod:`truth` (drgn + the ``-dbg`` vmlinux), and write the fixtures::

       vmcores/<key>/vmcore.zst        the ELF dump, zstd-compressed
       vmcores/<key>/truth.json.zst    the DWARF ground truth
       vmcores/<key>/serial.log        the guest console
       vmcores/<key>/manifest.json     how it was made (kernel, qemu args, sizes, sha256, ...)

Work files (the raw dump, the initramfs) stay in ``<cache>/build/<key>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kernels  # noqa: E402

MARKER = "DRGN-BTFVARS-READY"
EXTRA_OK = "DRGN-BTFVARS-EXTRA-OK"
DEFAULT_MEMORY = "256M"
MAX_COMPRESSED = 30 * 1000 * 1000  # bytes of vmcore.zst allowed per kernel (committed to git)

# Debian packages (bookworm) providing the host tools, keyed by the binary needed.
HOST_TOOLS: Dict[str, str] = {
    "depmod": "kmod",
    "zstd": "zstd",
    "mke2fs": "e2fsprogs",
}


@dataclasses.dataclass(frozen=True)
class GuestArch:
    """How to boot a kernel of one Debian architecture under QEMU (TCG)."""

    qemu: str                     # the QEMU binary
    machine: Tuple[str, ...]      # accelerator, machine and CPU options
    console: str                  # the serial console device of the guest kernel
    host_tools: Dict[str, str]    # binary -> bookworm package, for this architecture
    drgn_arch: str                # drgn.Architecture name of a dump of it


GUEST_ARCHES: Dict[str, GuestArch] = {
    "amd64": GuestArch(
        "qemu-system-x86_64", ("-accel", "tcg", "-M", "q35", "-cpu", "max,la57=off"), "ttyS0",
        {"qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static"}, "X86_64"),
    # pauth-impdef: QEMU's cheap pointer-authentication algorithm (the kernel
    # signs return addresses; the architected QARMA5 makes TCG boot twice as
    # slowly).  KASLR stays on: virt passes a kaslr-seed in the device tree.
    "arm64": GuestArch(
        "qemu-system-aarch64",
        ("-accel", "tcg,thread=multi", "-M", "virt", "-cpu", "max,pauth-impdef=on"), "ttyAMA0",
        {"qemu-system-aarch64": "qemu-system-arm",
         # the fake module is cross-built (vmcores/toolroot.py fakemod)
         "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
         "aarch64-linux-gnu-objcopy": "binutils-aarch64-linux-gnu"}, "AARCH64"),
}

# Stock modules loaded in the guest, in this order (each after its dependencies).
# Each entry lists alternatives: the first one that exists as a module is used; a
# module built into the kernel is simply skipped.  Only qemu_fw_cfg is mandatory.
STOCK_MODULES: Tuple[Tuple[str, ...], ...] = (
    ("qemu_fw_cfg",),
    ("loop",),
    ("crc32c_generic", "crc32c_cryptoapi", "crc32c-cryptoapi"),
    ("crc32c_intel",),
    ("ext4",),
    ("cdrom",),
    ("isofs",),
)
REQUIRED_MODULES = ("qemu_fw_cfg",)

# Time limits, in seconds.
T_APT = 900
T_BOOT = 300
T_QMP = 600
T_QUIT = 30
T_ZSTD = 900
T_TRUTH = 1800


def log(msg: str) -> None:
    """Print a progress line with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- host tools

def ensure_host_tools(arches: Iterable[str] = ("amd64",)) -> None:
    """Install missing host tools from the bookworm suite (idempotent; needs root):
    the common ones and those for guests of ``arches`` (Debian architectures)."""
    wanted = dict(HOST_TOOLS)
    for a in arches:
        wanted.update(GUEST_ARCHES[a].host_tools)
    missing = sorted({pkg for exe, pkg in wanted.items()
                      if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists()})
    if not missing:
        return
    log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    specs = [f"{p}/bookworm" for p in missing]
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *specs],
                       env=env, timeout=T_APT)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, timeout=T_APT)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *specs],
                       env=env, check=True, timeout=T_APT)


def tool(name: str) -> str:
    """The path of a host tool (also looking in /usr/sbin, not always on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    p = Path("/usr/sbin", name)
    if p.exists():
        return str(p)
    raise FileNotFoundError(name)


# --------------------------------------------------------------------------- modules

def module_name(path: str) -> str:
    """The kernel's name of a module file (``kernel/fs/ext4/ext4.ko.xz`` -> ``ext4``)."""
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.[a-z0-9]+)?$", "", base)
    return base.replace("-", "_")


class ModuleTree:
    """A kernel's unpacked modules directory with its dependency table.

    The Debian packages ship no ``modules.dep``; ``depmod`` is run once on the
    unpacked (cached) tree to create it.
    """

    def __init__(self, moddir: Path, release: str) -> None:
        self.moddir = moddir
        self.release = release
        dep = moddir / "modules.dep"
        if not dep.exists():
            # depmod -b ROOT looks at ROOT/lib/modules/<release>.
            root = moddir.parent.parent.parent
            if moddir != root / "lib" / "modules" / release:
                raise RuntimeError(f"unexpected modules directory layout: {moddir}")
            log(f"depmod -b {root} {release}")
            subprocess.run([tool("depmod"), "-b", str(root), release], check=True, timeout=600)
        self.deps: Dict[str, List[str]] = {}
        self.paths: Dict[str, str] = {}
        for line in dep.read_text().splitlines():
            if ":" not in line:
                continue
            mod, _, rest = line.partition(":")
            name = module_name(mod)
            self.paths.setdefault(name, mod)
            self.deps.setdefault(name, [module_name(d) for d in rest.split()])
        self.builtin = set()
        b = moddir / "modules.builtin"
        if b.exists():
            self.builtin = {module_name(x) for x in b.read_text().split()}

    def load_order(self, names: Iterable[str]) -> List[str]:
        """Names in an order that loads every module after its dependencies."""
        order: List[str] = []
        seen = set()

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            # modules.dep lists the transitive closure, the deepest dependency last.
            for d in reversed(self.deps.get(n, [])):
                visit(d)
            order.append(n)

        for n in names:
            visit(n)
        return order

    def read(self, name: str) -> bytes:
        """The uncompressed ``.ko`` bytes of a module (busybox insmod needs them plain)."""
        p = self.moddir / self.paths[name]
        data = p.read_bytes()
        if p.name.endswith(".xz"):
            return lzma.decompress(data)
        if p.name.endswith(".zst"):
            return subprocess.run([tool("zstd"), "-dc", str(p)], check=True, capture_output=True,
                                  timeout=120).stdout
        if p.name.endswith(".gz"):
            import gzip
            return gzip.decompress(data)
        return data


def modinfo_depends(ko: Path) -> List[str]:
    """The ``depends=`` list of a ``.ko`` file."""
    r = subprocess.run([tool("modinfo"), "-F", "depends", str(ko)], capture_output=True, text=True,
                       timeout=60)
    return [d.replace("-", "_") for d in r.stdout.strip().split(",") if d.strip()]


def modinfo_name(ko: Path) -> str:
    """The module name recorded in a ``.ko`` file (falls back to its file name)."""
    r = subprocess.run([tool("modinfo"), "-F", "name", str(ko)], capture_output=True, text=True,
                       timeout=60)
    return (r.stdout.strip() or module_name(ko.name)).replace("-", "_")


# --------------------------------------------------------------------------- initramfs

class Cpio:
    """A minimal writer of the ``newc`` cpio format used by initramfs (deterministic)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: Tuple[int, int] = (0, 0)) -> None:
        self.ino += 1
        nm = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nm), 0)
        hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.buf += hdr + nm
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str) -> None:
        """A directory (0755)."""
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """A regular file with its contents."""
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        """A symbolic link."""
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        """A character device node (the archive needs no root to hold one)."""
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        """The archive: entries, trailer, padded to 512 bytes."""
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


TICKER = """#!/bin/sh
# A named busybox shell loop (its comm is "ticker").
n=0
while :; do n=$((n + 1)); echo $n > /run/scratch/ticks; sleep 1; done
"""


def init_script(stock: List[str], extra: List[str]) -> str:
    """The guest's /init: load modules, mount, start processes, print the marker."""
    lines = [
        "#!/bin/sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t devtmpfs devtmpfs /dev 2>/dev/null",
        'echo "@@ kernel $(uname -r) $(uname -v)"',
    ]
    for m in stock:
        lines.append(f'insmod /lib/modules/stock/{m}.ko || echo "@@ insmod FAILED {m}"')
    for m in extra:
        lines.append(f'insmod /lib/modules/extra/{m}.ko || echo "@@ insmod FAILED {m}"')
    lines += [
        "rm -rf /lib/modules/stock /lib/modules/extra",
        'echo "@@ modules:"; cat /proc/modules',
        'echo "@@ /sys/kernel/btf:"; ls /sys/kernel/btf/',
    ]
    if extra:
        checks = " && ".join(f"[ -e /sys/kernel/btf/{m} ]" for m in extra)
        lines.append(f'if {checks}; then echo "{EXTRA_OK}"; else echo "@@ extra module BTF MISSING"; fi')
    lines += [
        "mkdir -p /run/scratch /mnt/ext4",
        "mount -t tmpfs -o size=4m scratch /run/scratch",
        "if mount -t ext4 -o loop /disk.img /mnt/ext4; then",
        "  echo 'written by the drgn-btfvars fixture builder' > /mnt/ext4/hello.txt",
        "else echo '@@ ext4 mount FAILED'; fi",
        "mkfifo /run/scratch/fifo",
        "cat /run/scratch/fifo > /dev/null &",
        "sleep 1000001 &",
        "sleep 1000002 &",
        "/bin/ticker &",
        "tail -f /mnt/ext4/hello.txt > /dev/null &",
        "sync",
        "sleep 1",
        "echo 3 > /proc/sys/vm/drop_caches",
        'echo "@@ mounts:"; cat /proc/mounts',
        'echo "@@ ps:"; ps',
        'echo "@@ meminfo:"; head -3 /proc/meminfo',
        f'echo "{MARKER}"',
        "while :; do sleep 3600; done",
    ]
    return "\n".join(lines) + "\n"


def make_ext4_image(path: Path) -> None:
    """A small ext4 file system image with a file on it (mounted on a loop device in the guest)."""
    if path.exists():
        path.unlink()
    with open(path, "wb") as f:
        f.truncate(4 << 20)
    # Fixed UUID, hash seed and time: the same image on every build.
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
    subprocess.run([tool("mke2fs"), "-q", "-F", "-t", "ext4", "-L", "fixture",
                    "-U", "4c1d2e3f-0000-4000-8000-000000000001",
                    "-E", "lazy_itable_init=0,lazy_journal_init=0,"
                          "hash_seed=4c1d2e3f-0000-4000-8000-000000000002", str(path)],
                   check=True, timeout=60, env=env)


def build_initramfs(k: kernels.Kernel, workdir: Path, extra: List[Path]) -> Tuple[Path, Dict[str, Any]]:
    """Write ``workdir/initramfs.cpio`` for kernel ``k`` and describe what it loads."""
    tree = ModuleTree(k.modules_dir(), k.release)
    wanted: List[str] = []
    skipped: List[str] = []
    for alts in STOCK_MODULES:
        for name in alts:
            if name in tree.paths:
                wanted.append(name)
                break
        else:
            if any(a in tree.builtin for a in alts):
                skipped.append(f"{alts[0]} (built in)")
            elif alts[0] in REQUIRED_MODULES:
                raise RuntimeError(f"{k.key}: required module {alts[0]} not found")
            else:
                skipped.append(f"{alts[0]} (absent)")
    extra_names = [modinfo_name(p) for p in extra]
    extra_deps = [d for p in extra for d in modinfo_depends(p)]
    missing = [d for d in extra_deps if d not in tree.paths and d not in tree.builtin]
    if missing:
        raise RuntimeError(f"{k.key}: extra module dependencies not found: {missing}")
    stock = tree.load_order(wanted + [d for d in extra_deps if d in tree.paths])

    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "run", "mnt", "tmp", "lib", "lib/modules",
              "lib/modules/stock", "lib/modules/extra"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", k.busybox().read_bytes(), 0o755)  # of the guest's architecture
    c.symlink("bin/sh", "busybox")
    c.file("bin/ticker", TICKER.encode(), 0o755)
    for m in stock:
        c.file(f"lib/modules/stock/{m}.ko", tree.read(m))
    for name, p in zip(extra_names, extra):
        c.file(f"lib/modules/extra/{name}.ko", p.read_bytes())
    img = workdir / "disk.img"
    make_ext4_image(img)
    c.file("disk.img", img.read_bytes())
    c.file("init", init_script(stock, extra_names).encode(), 0o755)
    out = workdir / "initramfs.cpio"
    out.write_bytes(c.finish())
    info = {
        "stock_modules": stock,
        "skipped_modules": skipped,
        "extra_modules": [
            {"name": n, "file": str(p), "sha256": sha256_file(p)} for n, p in zip(extra_names, extra)
        ],
    }
    return out, info


# --------------------------------------------------------------------------- QEMU + QMP

class Qmp:
    """A tiny synchronous QMP client over a unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.rfile = self.sock.makefile("rb")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self) -> Dict[str, Any]:
        line = self.rfile.readline()
        if not line:
            raise ConnectionError("QMP connection closed")
        return json.loads(line)

    def command(self, name: str, timeout: Optional[float] = None, **args: Any) -> Any:
        """Run a command and return its result, skipping asynchronous events."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        msg: Dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r.get("return")

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def qemu_args(k: kernels.Kernel, initrd: Path, serial: Path, qmp: Path, memory: str) -> List[str]:
    """The QEMU command line (recorded in the manifest)."""
    # init_on_free=1 zeroes freed pages (the unpacked initramfs image, dropped caches,
    # the module files removed after loading): the dump compresses far better.
    g = GUEST_ARCHES[k.arch]
    append = f"console={g.console} panic=-1 quiet rdinit=/init init_on_free=1"
    return [
        tool(g.qemu),
        *g.machine,
        "-smp", "2",
        "-m", memory,
        "-nodefaults",
        "-display", "none",
        "-no-reboot",
        "-device", "vmcoreinfo",
        "-serial", f"file:{serial}",
        "-qmp", f"unix:{qmp},server=on,wait=off",
        "-kernel", str(k.vmlinuz()),
        "-initrd", str(initrd),
        "-append", append,
    ]


def end_process(p: subprocess.Popen, grace: float = T_QUIT) -> None:
    """End the process we started (by its pid only): wait, then SIGTERM, then SIGKILL."""
    try:
        p.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def boot_and_dump(args: List[str], serial: Path, qmp_path: Path, dump: Path,
                  expect_extra: bool) -> Dict[str, float]:
    """Boot, wait for the marker, dump the guest memory to ``dump`` and quit QEMU."""
    for p in (serial, qmp_path, dump):
        if p.exists():
            p.unlink()
    timings: Dict[str, float] = {}
    t0 = time.monotonic()
    qemu_log = serial.with_name("qemu.log")
    with open(qemu_log, "wb") as out:  # a file, not a pipe: a full pipe would stall QEMU
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    log(f"qemu pid {proc.pid}")
    try:
        deadline = t0 + T_BOOT
        text = ""
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"qemu exited ({proc.returncode}) before the marker: "
                                   f"{tail(qemu_log)}\n"
                                   f"serial tail: {tail(serial)}")
            if serial.exists():
                text = serial.read_text(errors="replace")
                if MARKER in text:
                    break
                if "Kernel panic" in text:
                    raise RuntimeError(f"guest panicked:\n{tail(serial)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no marker after {T_BOOT}s; serial tail:\n{tail(serial)}")
            time.sleep(0.2)
        timings["boot_s"] = round(time.monotonic() - t0, 1)
        log(f"marker after {timings['boot_s']} s")
        failures = [line for line in text.splitlines() if "FAILED" in line]
        if failures:
            raise RuntimeError("guest setup failed: " + "; ".join(failures))
        if expect_extra and EXTRA_OK not in text:
            raise RuntimeError("the extra module's BTF is not in /sys/kernel/btf (rejected?); "
                               f"serial tail:\n{tail(serial)}")
        time.sleep(1.0)  # let the backgrounded processes settle into their sleeps
        t1 = time.monotonic()
        q = Qmp(qmp_path, timeout=30)
        try:
            q.command("stop")
            q.command("dump-guest-memory", timeout=T_QMP, paging=False, protocol=f"file:{dump}")
            timings["dump_s"] = round(time.monotonic() - t1, 1)
            try:
                q.command("quit", timeout=10)
            except (ConnectionError, OSError):
                pass
        finally:
            q.close()
    finally:
        end_process(proc)
    if not dump.exists() or dump.stat().st_size == 0:
        raise RuntimeError("dump-guest-memory produced no file")
    return timings


def tail(path: Path, n: int = 30) -> str:
    """The last lines of a text file (or a note that it does not exist)."""
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


# --------------------------------------------------------------------------- fixtures

def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compress(src: Path, dst: Path) -> None:
    """``zstd -19 --long=27`` (single-threaded; the machine is shared)."""
    tmp = dst.with_name(dst.name + ".tmp")
    subprocess.run([tool("zstd"), "-q", "-f", "-19", "--long=27", "-o", str(tmp), str(src)],
                   check=True, timeout=T_ZSTD)
    tmp.chmod(0o644)  # zstd copies the dump's 0400 mode
    tmp.replace(dst)


def clean_serial(raw: str) -> str:
    """The console log as committed: carriage returns removed."""
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def tool_version(cmd: Sequence[str]) -> str:
    """The first line of ``cmd --version`` (best effort)."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def build_one(key: str, extra: List[Path], memory: str, out_root: Path) -> Dict[str, Any]:
    """Build the fixtures of one kernel; returns its manifest."""
    k = kernels.KERNELS[key]
    t_start = time.monotonic()
    log(f"== {key}: {k.release} ({k.version})")
    for role in k.packages:
        kernels.unpack(key, role)
    t_fetch = time.monotonic() - t_start
    workdir = kernels.cache_dir() / "build" / key
    workdir.mkdir(parents=True, exist_ok=True)
    initrd, mods = build_initramfs(k, workdir, extra)
    log(f"initramfs {initrd.stat().st_size >> 20} MiB; modules {' '.join(mods['stock_modules'])}"
        + (f"; extra {' '.join(m['name'] for m in mods['extra_modules'])}" if extra else ""))
    serial = workdir / "serial.raw.log"
    qmp = workdir / "qmp.sock"
    dump = workdir / "vmcore"
    args = qemu_args(k, initrd, serial, qmp, memory)
    timings = boot_and_dump(args, serial, qmp, dump, expect_extra=bool(extra))
    raw_size = dump.stat().st_size
    log(f"dump {raw_size >> 20} MiB; sha256 ...")
    dump_sha = sha256_file(dump)

    out = out_root / key
    out.mkdir(parents=True, exist_ok=True)
    (out / "serial.log").write_text(clean_serial(serial.read_text(errors="replace")))

    t = time.monotonic()
    log("truth ...")
    truth_path = out / "truth.json.zst"
    summary_path = workdir / "truth-summary.json"
    if summary_path.exists():
        summary_path.unlink()
    subprocess.run([sys.executable, str(HERE / "truth.py"), "generate", key, str(dump),
                    "-o", str(truth_path), "--summary", str(summary_path)],
                   check=True, timeout=T_TRUTH)
    timings["truth_s"] = round(time.monotonic() - t, 1)
    summary = json.loads(summary_path.read_text())

    t = time.monotonic()
    log("zstd -19 --long=27 ...")
    compress(dump, out / "vmcore.zst")
    timings["compress_s"] = round(time.monotonic() - t, 1)
    timings["fetch_s"] = round(t_fetch, 1)
    timings["total_s"] = round(time.monotonic() - t_start, 1)

    manifest: Dict[str, Any] = {
        "key": key,
        "release": k.release,
        "version": k.version,
        "suite": k.suite,
        "arch": k.arch,
        "packages": {role: list(p) for role, p in k.packages.items()},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "memory": memory,
        "qemu_args": [os.path.basename(args[0])] + [
            a.replace(str(workdir), "$WORK").replace(str(kernels.cache_dir()), "$CACHE")
            for a in args[1:]
        ],
        "qemu_version": tool_version([args[0], "--version"]),
        "zstd_version": tool_version([tool("zstd"), "--version"]),
        "stock_modules": mods["stock_modules"],
        "skipped_modules": mods["skipped_modules"],
        "extra_modules": [m["name"] for m in mods["extra_modules"]],
        "extra_module_details": mods["extra_modules"],
        "vmcore": {
            "format": "ELF (QMP dump-guest-memory, paging=false)",
            "sha256": dump_sha,
            "size": raw_size,
            "compressed_size": (out / "vmcore.zst").stat().st_size,
        },
        "kernel": summary["kernel"],
        "truth": {"json_size": summary["json_size"], "compressed_size": summary["compressed_size"],
                  "counts": summary["counts"]},
        "timings_s": timings,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if manifest["vmcore"]["compressed_size"] > MAX_COMPRESSED:
        raise RuntimeError(f"vmcore.zst is {manifest['vmcore']['compressed_size'] / 1e6:.1f} MB, over "
                           f"the {MAX_COMPRESSED / 1e6:.0f} MB budget: rebuild with a smaller --memory")
    log(f"== {key} done in {timings['total_s']} s: vmcore.zst "
        f"{manifest['vmcore']['compressed_size'] / 1e6:.1f} MB, truth.json.zst "
        f"{manifest['truth']['compressed_size'] / 1e6:.2f} MB")
    return manifest


def parse_extra(specs: List[str]) -> Dict[str, List[Path]]:
    """``KEY=PATH.ko`` options grouped by kernel key."""
    out: Dict[str, List[Path]] = {}
    for s in specs:
        key, sep, path = s.partition("=")
        if not sep or key not in kernels.KERNELS:
            raise SystemExit(f"--extra-module wants KEY=PATH.ko with KEY in {list(kernels.KERNELS)}: {s}")
        p = Path(path).resolve()
        if not p.is_file():
            raise SystemExit(f"no such module file: {p}")
        out.setdefault(key, []).append(p)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keys", nargs="*", metavar="KEY", help=f"kernels ({', '.join(kernels.KERNELS)}; default all)")
    ap.add_argument("--extra-module", action="append", default=[], metavar="KEY=PATH.ko",
                    help="also insmod this module in KEY's guest, after the stock ones (repeatable)")
    ap.add_argument("--memory", default=DEFAULT_MEMORY, help=f"guest memory (default {DEFAULT_MEMORY})")
    ap.add_argument("--out", type=Path, default=HERE, help="fixture root (default: vmcores/)")
    a = ap.parse_args(argv)
    keys = a.keys or list(kernels.KERNELS)
    for key in keys:
        if key not in kernels.KERNELS:
            ap.error(f"unknown kernel {key!r}")
    extra = parse_extra(a.extra_module)
    ensure_host_tools({kernels.KERNELS[key].arch for key in keys})
    failed = []
    for key in keys:
        try:
            build_one(key, extra.get(key, []), a.memory, a.out)
        except Exception as e:  # keep going with the other kernels, report at the end
            log(f"!! {key} FAILED: {type(e).__name__}: {e}")
            failed.append(key)
    if failed:
        log(f"failed: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
