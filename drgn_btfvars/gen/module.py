"""Package a variable BTF as the fake kernel module ``btf_global_variables.ko``.

The module has no code (its init returns 0).  It is built with kbuild against
the kernel's own Debian ``linux-headers`` tree, so that its vermagic, module
layout and symbol versions are right for that very kernel; kbuild's own BTF
step is turned off (``CONFIG_DEBUG_INFO_BTF_MODULES=``), and the variable BTF
is then put in as the module's ``.BTF`` section with ``objcopy``::

    objcopy --remove-section=.BTF --remove-section=.BTF.base \\
            --add-section .BTF=vars.btf --set-section-flags .BTF=contents,readonly

``.BTF.base`` must go: with it (Debian ≥ 6.12 builds modules against a
distilled base) the kernel would relocate our BTF against it.

Headers unpacked privately (``dpkg -x`` of ``linux-headers-<abi>``,
``linux-headers-<ver>-common`` and ``linux-kbuild-<ver>`` into one root)
carry absolute ``/usr/src`` paths in their Makefiles: :func:`prepare_headers`
rewrites them to the private root, in place.  The kbuild helper binaries
(fixdep, modpost, …) of trixie/sid need a newer glibc than the machine may
have: given ``host_root`` (a directory where a newer Debian ``libc6`` was
unpacked, e.g. by ``vmcores/toolroot.py <suite> libc --path``), each helper is
replaced by a shell wrapper that runs it through that root's dynamic loader.
Compiler flags of a newer gcc that the host gcc lacks are mapped to the
equivalent old ones (``-fmin-function-alignment`` → ``-falign-functions``).
"""

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

__all__ = [
    "MODULE_NAME",
    "ModuleBuildError",
    "prepare_headers",
    "kernel_release",
    "build_module",
    "inject_btf",
    "read_ko_btf",
]

MODULE_NAME = "btf_global_variables"
_WRAPPED = ".glibc-wrapped"  # suffix of a kbuild helper moved aside by _wrap_binaries
_TEMPLATE = Path(__file__).with_name("btf_global_variables.c.in")


class ModuleBuildError(RuntimeError):
    """The module could not be built or its BTF not injected."""


def _private_root(headers: Path) -> Optional[Path]:
    """The directory holding ``usr/src`` when ``headers`` is an unpacked copy."""
    parts = headers.resolve().parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "usr" and parts[i + 1] == "src":
            root = Path(*parts[:i])
            return None if str(root) == "/" else root
    return None


def _rewrite_paths(path: Path, root: Path) -> bool:
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return False
    new = re.sub(r"(?<![\w/.])/usr/(src|lib/linux-kbuild)", lambda m: f"{root}/usr/{m.group(1)}",
                 text)
    # 7.x headers name their build output directory absolutely (KBUILD_OUTPUT=...).
    new = re.sub(r"(KBUILD_OUTPUT\s*:?=\s*)(/usr/src/)", lambda m: f"{m.group(1)}{root}/usr/src/",
                 new)
    if new != text:
        path.write_text(new)
        return True
    return False


def _host_glibc() -> tuple:
    ver = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0"
    return tuple(int(x) for x in ver.split()[-1].split(".")[:2])


def _elf_executables(directory: Path) -> List[Path]:
    out = []
    for p in sorted(directory.rglob("*")):
        if p.name.endswith(_WRAPPED) or p.is_symlink() or not p.is_file():
            continue
        if not p.stat().st_mode & stat.S_IXUSR:
            continue
        with open(p, "rb") as f:
            if f.read(4) == b"\x7fELF":
                out.append(p)
    return out


def _needs_new_glibc(binary: Path) -> bool:
    """Whether ``binary`` asks for a GLIBC_x.y symbol version newer than the host's."""
    data = binary.read_bytes()
    need = max((tuple(int(x) for x in m.groups())
                for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data)), default=(0, 0))
    return need > _host_glibc()


def _wrap_binaries(directory: Path, host_root: Path) -> List[Path]:
    ld = None
    for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib64", "lib64"):
        p = host_root / d / "ld-linux-x86-64.so.2"
        if p.exists() and not (p.is_symlink() and os.path.isabs(os.readlink(p))):
            ld = p
            break
    if ld is None:
        raise ModuleBuildError(f"no ld-linux-x86-64.so.2 in {host_root}")
    libpath = ":".join(str(host_root / d) for d in ("usr/lib/x86_64-linux-gnu",
                                                    "lib/x86_64-linux-gnu")
                       if (host_root / d).is_dir())
    wrapped = []
    for p in _elf_executables(directory):
        real = p.with_name(p.name + _WRAPPED)
        p.rename(real)
        p.write_text("#!/bin/sh\n# drgn-btfvars: run through a private, newer glibc\n"
                     f"exec {shlex.quote(str(ld))} --library-path {shlex.quote(libpath)} "
                     f"--argv0 \"$0\" {shlex.quote(str(real))} \"$@\"\n")
        p.chmod(0o755)
        wrapped.append(p)
    return wrapped


def prepare_headers(headers: Path, host_root: Optional[Path] = None) -> Dict[str, object]:
    """Make an unpacked Debian headers tree usable in place; idempotent.

    Rewrites absolute ``/usr/src`` / ``/usr/lib/linux-kbuild`` paths when the
    tree is a private copy, and wraps the kbuild helper binaries with
    ``host_root``'s loader when they need a newer glibc than the host's.
    Returns what was done.
    """
    headers = headers.resolve()
    if not (headers / "Makefile").exists():
        raise ModuleBuildError(f"{headers} is not a kernel headers directory (no Makefile)")
    done: Dict[str, object] = {"rewritten": [], "wrapped": []}
    root = _private_root(headers)
    if root is not None:
        for d in (root / "usr/src").iterdir():
            for name in ("Makefile", ".kernelvariables"):
                f = d / name
                if f.is_file() and _rewrite_paths(f, root):
                    done["rewritten"].append(str(f))  # type: ignore[union-attr]
    dirs = [d for d in {(headers / "scripts").resolve(), (headers / "tools").resolve()}
            if d.is_dir()]
    new = [p for d in dirs for p in _elf_executables(d) if _needs_new_glibc(p)]
    if new:
        if host_root is None:
            raise ModuleBuildError(
                f"{new[0]} needs a newer glibc than this machine's; give a private root "
                "with a newer libc6 (host_root / --host-root, e.g. "
                "`python3 vmcores/toolroot.py trixie libc --path`)")
        for d in dirs:
            done["wrapped"] += [str(p) for p in _wrap_binaries(d, host_root)]  # type: ignore
    return done


def kernel_release(headers: Path) -> str:
    """``uname -r`` of the kernel the headers are for."""
    f = headers / "include" / "config" / "kernel.release"
    if f.exists():
        return f.read_text().strip()
    m = re.search(r"linux-headers-(.+)$", headers.resolve().name)
    if m:
        return m.group(1)
    raise ModuleBuildError(f"cannot tell the kernel release of {headers}")


def _make_overrides(headers: Path) -> List[str]:
    """make variables that adapt the kernel's config to the host compiler."""
    over = ["CONFIG_DEBUG_INFO_BTF_MODULES="]  # our .BTF comes afterwards
    cc = os.environ.get("CC", "gcc")
    kv = headers / ".kernelvariables"
    m = re.search(r"^CC\s*=.*?(gcc-\d+)\s*$", kv.read_text(), re.M) if kv.exists() else None
    if m and not shutil.which(f"x86_64-linux-gnu-{m.group(1)}"):
        # Debian's headers name the kernel's own compiler; use the host's instead
        # (a module without code does not care which gcc built it).
        over.append(f"CC={cc}")
    r = subprocess.run([cc, "-fmin-function-alignment=16", "-x", "c", "-c", "-o", os.devnull,
                        "-"], input="", capture_output=True, text=True, check=False)
    if r.returncode != 0:
        # The kernel's Makefile falls back to -falign-functions (same effect).
        over.append("CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT=")
    return over


def inject_btf(ko_in: Path, btf: Path, ko_out: Path) -> None:
    """Replace ``ko_in``'s ``.BTF`` (and drop ``.BTF.base``) with ``btf``."""
    r = subprocess.run(
        ["objcopy", "--remove-section=.BTF", "--remove-section=.BTF.base",
         f"--add-section=.BTF={btf}", "--set-section-flags=.BTF=contents,readonly",
         str(ko_in), str(ko_out)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise ModuleBuildError(f"objcopy failed: {r.stderr.strip()}")


def read_ko_btf(ko: Path) -> bytes:
    """The ``.BTF`` section of a ``.ko`` (``objcopy --dump-section``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "btf"
        r = subprocess.run(["objcopy", f"--dump-section=.BTF={out}", str(ko), str(Path(tmp) / "x")],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0 or not out.exists():
            raise ModuleBuildError(f"{ko} has no .BTF section: {r.stderr.strip()}")
        return out.read_bytes()


def build_module(headers: Path, btf: Path, output: Path, *, host_root: Optional[Path] = None,
                 workdir: Optional[Path] = None, jobs: int = 1, verbose: bool = False) -> Path:
    """Build ``btf_global_variables.ko`` for ``headers`` with ``btf`` as its .BTF.

    ``output`` is the .ko to write (or a directory to write it into).
    """
    headers = headers.resolve()
    prepare_headers(headers, host_root)
    release = kernel_release(headers)
    if output.is_dir():
        output = output / f"{MODULE_NAME}.ko"
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="btfvars-kbuild-")
        workdir = Path(tmp.name)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        from drgn_btfvars import __version__
        src = _TEMPLATE.read_text().replace("@RELEASE@", release).replace(
            "@GENERATOR@", f"drgn-btfvars {__version__}")
        (workdir / f"{MODULE_NAME}.c").write_text(src)
        (workdir / "Makefile").write_text(f"obj-m := {MODULE_NAME}.o\n")
        cmd = ["make", "-C", str(headers), f"M={workdir}", f"-j{jobs}",
               *_make_overrides(headers), "modules"]
        if verbose:
            cmd.insert(1, "V=1")
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        built = workdir / f"{MODULE_NAME}.ko"
        if r.returncode != 0 or not built.exists():
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-25:])
            raise ModuleBuildError(f"kbuild failed ({shlex.join(cmd)}):\n{tail}")
        output.parent.mkdir(parents=True, exist_ok=True)
        inject_btf(built, btf, output)
        if read_ko_btf(output) != btf.read_bytes():
            raise ModuleBuildError(f"{output}: .BTF does not read back byte-identical")
        return output
    finally:
        if tmp is not None:
            tmp.cleanup()
