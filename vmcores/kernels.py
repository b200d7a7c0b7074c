"""The Debian kernels this project is proven on, pinned, and a fetcher for them.

Packages are downloaded by name with ``apt-get download`` and unpacked with
``dpkg -x`` into a cache directory outside the repository; nothing is ever
installed on the machine.  The cache is ``$DRGN_BTFVARS_CACHE`` or
``~/.cache/drgn-btfvars``::

    debs/<file>.deb                 downloaded packages
    kernels/<key>/<role>/           one unpacked tree per package role

Usage from the shell: ``python3 vmcores/kernels.py <key> [role ...]`` prints
the unpacked directory of each role (fetching and unpacking what is missing).
"""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Kernel:
    key: str
    release: str  # uname -r
    version: str  # Debian package version
    suite: str
    # role -> package names; every role is unpacked into its own directory.
    packages: Dict[str, Tuple[str, ...]]
    # Debian architecture of the kernel ("amd64", "arm64").  Packages of another
    # architecture than the machine's are named "name:arch=version".
    arch: str = "amd64"

    def busybox(self) -> Path:
        """A static busybox that runs in the guest: the kernel's ``busybox``
        package role when it has one (another architecture), else the host's."""
        if "busybox" in self.packages:
            p = unpack(self.key, "busybox") / "bin" / "busybox"
            if p.exists():
                return p
            raise FileNotFoundError(f"no bin/busybox in the {self.key} busybox package")
        import shutil

        found = shutil.which("busybox")
        if found is None:
            raise FileNotFoundError("busybox (Debian busybox-static) is needed")
        return Path(found)

    def vmlinuz(self) -> Path:
        root = unpack(self.key, "image")
        for p in (
            root / "boot" / f"vmlinuz-{self.release}",
            root / "usr/lib/modules" / self.release / "vmlinuz",
        ):
            if p.exists():
                return p
        raise FileNotFoundError(f"no vmlinuz in {root}")

    def modules_dir(self) -> Path:
        # Before 7.x the image package carries the modules too.
        root = unpack(self.key, "modules" if "modules" in self.packages else "image")
        for p in (root / "lib/modules" / self.release, root / "usr/lib/modules" / self.release):
            if p.is_dir():
                return p
        raise FileNotFoundError(f"no modules directory in {root}")

    def debug_vmlinux(self) -> Path:
        """The vmlinux with DWARF from the -dbg package (symlinks resolved)."""
        root = unpack(self.key, "dbg")
        for p in (
            root / "usr/lib/debug/boot" / f"vmlinux-{self.release}",
            root / "usr/lib/debug/lib/modules" / self.release / "vmlinux",
            root / "usr/lib/debug/usr/lib/modules" / self.release / "vmlinux",
        ):
            if p.is_symlink():
                target = os.readlink(p)
                p = (p.parent / target) if not os.path.isabs(target) else root / target.lstrip("/")
            if p.exists():
                return p
        raise FileNotFoundError(f"no debug vmlinux in {root}")


def _img(abi: str, ver: str) -> Dict[str, Tuple[str, ...]]:
    return {
        "image": (f"linux-image-{abi}-unsigned={ver}",),
        "dbg": (f"linux-image-{abi}-dbg={ver}",),
    }


def _img_foreign(abi: str, ver: str, arch: str, busybox: str) -> Dict[str, Tuple[str, ...]]:
    # A kernel of another architecture also needs a busybox of that architecture.
    return {
        "image": (f"linux-image-{abi}-unsigned:{arch}={ver}",),
        "dbg": (f"linux-image-{abi}-dbg:{arch}={ver}",),
        "busybox": (f"busybox-static:{arch}={busybox}",),
    }


KERNELS: Dict[str, Kernel] = {
    k.key: k
    for k in (
        Kernel("bookworm", "6.1.0-50-amd64", "6.1.176-1", "bookworm",
               _img("6.1.0-50-amd64", "6.1.176-1")),
        Kernel("trixie", "6.12.117+deb13-amd64", "6.12.117-1", "trixie",
               _img("6.12.117+deb13-amd64", "6.12.117-1")),
        Kernel("sid", "7.2.13+deb14-amd64", "7.2.13-1", "sid", {
            # sid splits the kernel into binary / modules / base packages.
            "image": ("linux-binary-7.2.13+deb14-amd64=7.2.13-1",
                      "linux-base-7.2.13+deb14-amd64=7.2.13-1"),
            "modules": ("linux-modules-7.2.13+deb14-amd64=7.2.13-1",),
            "dbg": ("linux-image-7.2.13+deb14-amd64-dbg=7.2.13-1",),
        }),
        # The same Debian kernel version as "trixie", built for arm64.
        Kernel("trixie-arm64", "6.12.117+deb13-arm64", "6.12.117-1", "trixie",
               _img_foreign("6.12.117+deb13-arm64", "6.12.117-1", "arm64",
                            "1:1.35.0-4+deb12u1+b1"),
               arch="arm64"),
    )
}


def cache_dir() -> Path:
    d = Path(os.environ.get("DRGN_BTFVARS_CACHE") or Path.home() / ".cache" / "drgn-btfvars")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _deb_glob(spec: str) -> str:
    name, _, ver = spec.partition("=")
    # "name:arm64" asks for another architecture: the file ends in _arm64.deb.
    name, _, arch = name.partition(":")
    # apt-get download keeps the epoch in the file name, with ':' escaped
    # as '%3a' (libbpf1_1%3a1.5.0-3_amd64.deb).
    return f"{name}_{ver.replace(':', '%3a')}_{arch or '*'}.deb"


def download(specs: List[str]) -> List[Path]:
    """Download ``name=version`` packages (cached) and return their paths."""
    debs = cache_dir() / "debs"
    debs.mkdir(exist_ok=True)
    missing = [s for s in specs if not list(debs.glob(_deb_glob(s)))]
    if missing:
        subprocess.run([str(HERE / "apt-suites.sh")], check=True)
        foreign = sorted({s.partition("=")[0].partition(":")[2] for s in missing} - {""})
        if foreign:
            add_architectures(foreign)
        subprocess.run(["apt-get", "download", "-q", *missing], cwd=debs, check=True,
                       timeout=1800)
    out = []
    for s in specs:
        found = sorted(debs.glob(_deb_glob(s)))
        if not found:
            raise FileNotFoundError(f"apt-get download gave no file for {s}")
        out.append(found[0])
    return out


def add_architectures(arches: List[str]) -> None:
    """Let apt download packages of other architectures (``dpkg
    --add-architecture``, then ``apt-get update``); nothing is installed."""
    have = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                          text=True, check=True).stdout.split()
    native = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                            check=True).stdout.strip()
    new = [a for a in arches if a not in have and a != native]
    for a in new:
        subprocess.run(["dpkg", "--add-architecture", a], check=True, timeout=60)
    if new:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=900)


def unpack_packages(dest: Path, specs: List[str]) -> Path:
    """Unpack packages into ``dest`` once (a ``.done`` stamp marks success)."""
    stamp = dest / ".done"
    if stamp.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for deb in download(specs):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, timeout=1800)
    stamp.write_text("\n".join(specs) + "\n")
    return dest


def unpack(key: str, role: str) -> Path:
    k = KERNELS[key]
    return unpack_packages(cache_dir() / "kernels" / key / role, list(k.packages[role]))


def main(argv: List[str]) -> int:
    if not argv or argv[0] not in KERNELS:
        print(f"usage: {sys.argv[0]} {{{'|'.join(KERNELS)}}} [role ...]", file=sys.stderr)
        return 2
    for role in argv[1:] or list(KERNELS[argv[0]].packages):
        print(unpack(argv[0], role))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
