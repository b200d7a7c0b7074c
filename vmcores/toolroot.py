"""Run a Debian tool of another suite without installing it: a private root.

Some tools this project needs exist only in newer Debian suites than the
machine's (pahole ≥ 1.28 with ``global_var``, a bpftool that knows new BTF,
the kbuild helpers of a trixie/sid kernel), and those builds need a newer
glibc than bookworm's.  Nothing is installed: the tool's package and the
shared libraries it depends on (resolved from the package metadata of that
suite, recursively) are downloaded with ``apt-get download`` and unpacked
with ``dpkg -x`` into one directory per suite and tool::

    <cache>/toolroots/<suite>-<tool>/

and the binary is started through that root's own dynamic loader::

    <root>/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \\
        --library-path <root>/usr/lib/x86_64-linux-gnu:<root>/lib/x86_64-linux-gnu \\
        <root>/usr/bin/pahole ARGS...

Usage from the shell::

    python3 vmcores/toolroot.py <suite> <tool> -- ARGS...   # run the tool
    python3 vmcores/toolroot.py <suite> <tool> --path       # print the root
    python3 vmcores/toolroot.py <suite> <tool> --argv       # print the argv prefix
    python3 vmcores/toolroot.py headers <key>               # unpacked Debian headers dir
    python3 vmcores/toolroot.py fakemod <key> [--no-boot]   # variable BTF + module + QEMU check

``<tool>`` is one of :data:`TOOLS` (``pahole``, ``bpftool``), or ``libc`` for
a root with only the C library and the libraries every kbuild helper needs
(used to run a newer kernel's kbuild binaries, see :func:`wrap_elf_binaries`).
"""

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import kernels  # noqa: E402  (vmcores/kernels.py: download + unpack helpers)

__all__ = [
    "TOOLS",
    "suite_version",
    "closure",
    "ensure_root",
    "library_path",
    "loader",
    "tool_argv",
    "run_tool",
    "wrap_elf_binaries",
    "kernel_headers",
    "fakemod",
    "main",
]

#: tool -> (root packages, binary path inside the root or None)
TOOLS: Dict[str, Tuple[Tuple[str, ...], Optional[str]]] = {
    "pahole": (("pahole",), "usr/bin/pahole"),
    "bpftool": (("bpftool",), "usr/sbin/bpftool"),
    # The libraries a kernel's kbuild helpers (fixdep, modpost, objtool,
    # sign-file, resolve_btfids, ...) link against.
    "libc": (("libc6", "libelf1t64", "libssl3t64", "zlib1g", "libzstd1"), None),
}

#: Dependencies never worth unpacking into a private root (no shared
#: libraries a binary loads; big or script-only packages).
_SKIP: Set[str] = {
    "debconf", "debconf-2.0", "perl", "perl-base", "python3", "dpkg", "libc-bin",
    "libc-dev-bin", "install-info", "sensible-utils", "lsb-base", "usrmerge",
    "init-system-helpers", "base-files", "tzdata", "dwarves",
}

_madison_cache: Dict[Tuple[str, str], Optional[str]] = {}


def suite_version(name: str, suite: str) -> Optional[str]:
    """The version of package ``name`` in ``suite`` (None if the suite lacks it)."""
    key = (name, suite)
    if key not in _madison_cache:
        out = subprocess.run(["apt-cache", "madison", name], capture_output=True,
                             text=True, check=False).stdout
        ver = None
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[0] == name and re.search(
                    rf"\s{re.escape(suite)}/\S+\s", " " + parts[2] + " "):
                ver = parts[1]
                break
        _madison_cache[key] = ver
    return _madison_cache[key]


def _depends(name: str, version: str) -> List[List[str]]:
    """Depends + Pre-Depends of ``name=version`` as lists of alternatives."""
    out = subprocess.run(["apt-cache", "show", f"{name}={version}"], capture_output=True,
                         text=True, check=True).stdout
    deps: List[List[str]] = []
    for line in out.split("\n\n")[0].splitlines():
        field, _, value = line.partition(":")
        if field not in ("Depends", "Pre-Depends"):
            continue
        for group in value.split(","):
            alts = []
            for alt in group.split("|"):
                alt = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip()
                alts.append(alt.split(":")[0])  # drop ":any"
            if alts and alts[0]:
                deps.append(alts)
    return deps


def closure(packages: Sequence[str], suite: str) -> List[str]:
    """``name=version`` specs of ``packages`` and their dependencies in ``suite``."""
    seen: Dict[str, str] = {}
    todo = list(packages)
    while todo:
        name = todo.pop()
        if name in seen or name in _SKIP:
            continue
        ver = suite_version(name, suite)
        if ver is None:
            raise LookupError(f"package {name} is not in Debian {suite} (apt-cache madison)")
        seen[name] = ver
        for alts in _depends(name, ver):
            if any(a in seen for a in alts) or all(a in _SKIP for a in alts):
                continue
            for a in alts:  # first alternative that the suite really has
                if a not in _SKIP and suite_version(a, suite) is not None:
                    todo.append(a)
                    break
    return [f"{n}={v}" for n, v in sorted(seen.items())]


def _root_dir(suite: str, tool: str) -> Path:
    return kernels.cache_dir() / "toolroots" / f"{suite}-{tool}"


def ensure_root(suite: str, tool: str) -> Path:
    """Download and unpack ``tool`` of ``suite`` with its libraries (cached)."""
    if tool not in TOOLS:
        raise KeyError(f"unknown tool {tool!r}; known: {', '.join(TOOLS)}")
    root = _root_dir(suite, tool)
    if not (root / ".done").exists():
        specs = closure(TOOLS[tool][0], suite)
        root.mkdir(parents=True, exist_ok=True)
        for deb in _download(specs):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=1800)
        (root / ".done").write_text("\n".join(specs) + "\n")
    return root


def _deb_globs(spec: str) -> List[str]:
    name, _, ver = spec.partition("=")
    name, _, arch = name.partition(":")  # "name:arm64": another architecture's package
    arch = arch or "*"
    # apt-get download keeps an epoch as '%3a' in the file name; dpkg tools drop it.
    return [f"{name}_{ver.replace(':', '%3a')}_{arch}.deb",
            f"{name}_{ver.split(':')[-1]}_{arch}.deb"]


def _download(specs: Sequence[str]) -> List[Path]:
    """Download ``name=version`` packages into the shared deb cache (epoch-safe)."""
    debs = kernels.cache_dir() / "debs"
    debs.mkdir(exist_ok=True)

    def found(spec: str) -> List[Path]:
        return sorted(p for g in _deb_globs(spec) for p in debs.glob(g))

    missing = [s for s in specs if not found(s)]
    if missing:
        subprocess.run([str(HERE / "apt-suites.sh")], check=True)
        foreign = sorted({s.partition("=")[0].partition(":")[2] for s in missing} - {""})
        if foreign:
            kernels.add_architectures(foreign)
        subprocess.run(["apt-get", "download", "-q", *missing], cwd=debs, check=True,
                       timeout=1800, stderr=subprocess.DEVNULL)
    out = []
    for s in specs:
        f = found(s)
        if not f:
            raise FileNotFoundError(f"apt-get download gave no file for {s}")
        out.append(f[0])
    return out


def library_path(root: Path) -> str:
    """The ``--library-path`` value for a private root."""
    dirs = [root / "usr/lib/x86_64-linux-gnu", root / "lib/x86_64-linux-gnu",
            root / "usr/lib", root / "lib"]
    return ":".join(str(d) for d in dirs if d.is_dir())


def loader(root: Path) -> Path:
    """The root's own ``ld-linux-x86-64.so.2`` (never a symlink out of the root)."""
    for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib64", "lib64"):
        p = root / d / "ld-linux-x86-64.so.2"
        if p.exists() and not (p.is_symlink() and os.path.isabs(os.readlink(p))):
            return p
    raise FileNotFoundError(f"no ld-linux-x86-64.so.2 in {root}")


def tool_argv(suite: str, tool: str, binary: Optional[str] = None) -> List[str]:
    """The argv prefix that runs ``tool`` (or ``binary``, a path) from its root."""
    root = ensure_root(suite, tool)
    if binary is None:
        rel = TOOLS[tool][1]
        if rel is None:
            raise ValueError(f"{tool} is a library root: give a binary to run")
        binary = str(root / rel)
    return [str(loader(root)), "--library-path", library_path(root), binary]


def run_tool(suite: str, tool: str, args: Sequence[str], **kw) -> "subprocess.CompletedProcess":
    """Run ``tool`` of ``suite`` with ``args`` (keyword args go to subprocess.run)."""
    return subprocess.run([*tool_argv(suite, tool), *args], **kw)


def _is_elf_exec(p: Path) -> bool:
    try:
        st = p.lstat()
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            return False
        with open(p, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    # ELF, ET_EXEC or ET_DYN with an interpreter: check the magic and type only.
    return head[:4] == b"\x7fELF" and head[16] in (2, 3)


def wrap_elf_binaries(directory: Path, suite: str) -> List[Path]:
    """Make every ELF executable under ``directory`` run through ``suite``'s libc root.

    Each binary ``X`` is renamed ``X.real`` and ``X`` becomes a small shell
    script that execs the private loader on it, so that build systems that
    call ``X`` by path (kbuild's fixdep, modpost, objtool …) keep working.
    Idempotent.  Returns the wrapped binaries.
    """
    root = ensure_root(suite, "libc")
    ld, lp = loader(root), library_path(root)
    wrapped = []
    for p in sorted(directory.rglob("*")):
        if p.name.endswith(".real") or not _is_elf_exec(p):
            continue
        real = p.with_name(p.name + ".real")
        p.rename(real)
        p.write_text("#!/bin/sh\n# private-root wrapper (vmcores/toolroot.py)\n"
                     f"exec {shlex.quote(str(ld))} --library-path {shlex.quote(lp)} "
                     f"{shlex.quote(str(real))} \"$@\"\n")
        p.chmod(0o755)
        wrapped.append(p)
    return wrapped


def _headers_specs(k: "kernels.Kernel") -> List[str]:
    abi = k.release
    upstream = k.version.rsplit("-", 1)[0]          # 6.12.117
    flavour = abi.rsplit("-", 1)[-1]                # amd64
    common_abi = abi[: -len(flavour) - 1]           # 6.12.117+deb13 / 6.1.0-50
    kbuild = f"linux-kbuild-{common_abi}" if "+" in abi else \
        f"linux-kbuild-{'.'.join(upstream.split('.')[:2])}"
    # The flavour's headers are of the kernel's architecture (a foreign one is
    # named "name:arm64"); the common headers are "all"; linux-kbuild holds the
    # helper programs kbuild runs on the build machine (fixdep, modpost, ...),
    # so it is always the host's own architecture.
    arch = "" if k.arch == _host_arch() else f":{k.arch}"
    return [f"linux-headers-{abi}{arch}={k.version}",
            f"linux-headers-{common_abi}-common={k.version}", f"{kbuild}={k.version}"]


def _host_arch() -> str:
    """This machine's Debian architecture (``amd64``)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def kernel_headers(key: str) -> Path:
    """The unpacked ``linux-headers-<abi>`` directory of kernel ``key`` (cached)."""
    k = kernels.KERNELS[key]
    root = kernels.cache_dir() / "headers" / key
    if not (root / ".done").exists():
        root.mkdir(parents=True, exist_ok=True)
        specs = _headers_specs(k)
        for deb in _download(specs):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=1800)
        (root / ".done").write_text("\n".join(specs) + "\n")
    return root / "usr/src" / f"linux-headers-{k.release}"


def _pahole_suite(config_version: Optional[int]) -> str:
    # trixie ships pahole 1.30, sid 1.32: take the one that built the kernel
    # (a 1.24/1.25-built kernel dedups with 1.30 given the old feature list).
    return "sid" if config_version is not None and config_version > 130 else "trixie"


def fakemod(key: str, boot: bool = True) -> Dict[str, object]:
    """Generate, package and (optionally) boot-check the fake module of ``key``.

    Writes ``<cache>/fakemod/<key>/{base.btf,vars.raw.btf,vars.btf,
    btf_global_variables.ko,serial.log,figures.json}`` and returns the figures.
    """
    import json
    import time

    sys.path.insert(0, str(HERE.parent))
    from drgn_btfvars.gen.generate import extract_btf, generate
    from drgn_btfvars.gen.module import build_module
    from drgn_btfvars.gen.pahole import config_pahole_version

    k = kernels.KERNELS[key]
    if k.arch != _host_arch():
        # the cross compiler and binutils for build_module (bookworm packages)
        import build

        build.ensure_host_tools([k.arch])
    out = kernels.cache_dir() / "fakemod" / key
    out.mkdir(parents=True, exist_ok=True)
    headers = kernel_headers(key)
    cfg = config_pahole_version(headers / ".config")
    psuite = _pahole_suite(cfg)
    vmlinux = k.debug_vmlinux()
    t0 = time.monotonic()
    r = generate(vmlinux, out / "vars.btf", pahole=shlex.join(tool_argv(psuite, "pahole")),
                 kernel_pahole=cfg, bpftool=shlex.join(tool_argv(psuite, "bpftool")),
                 raw_output=out / "vars.raw.btf", log=lambda s: print(s, file=sys.stderr))
    (out / "base.btf").write_bytes(extract_btf(vmlinux))  # pyelftools: any architecture
    t_gen = time.monotonic() - t0
    glibc_suite = None if k.suite == "bookworm" else k.suite
    t1 = time.monotonic()
    ko = build_module(headers, out / "vars.btf", out / "btf_global_variables.ko",
                      host_root=ensure_root(glibc_suite, "libc") if glibc_suite else None)
    t_mod = time.monotonic() - t1
    fig: Dict[str, object] = {
        "key": key, "release": k.release, "config_pahole_version": cfg,
        "pahole": f"{psuite} {r.pahole_version}", "btf_features": r.btf_features,
        "base_size": r.base_size, "raw_size": r.raw_size, "vars_size": r.size,
        "ko_size": ko.stat().st_size, "counts": r.counts,
        "pahole_counts": r.pahole_counts,
        "supplement": None if r.supplement is None else {
            "candidates": r.supplement.candidates, "added": r.supplement.added,
            "new_types": r.supplement.new_types, "skipped": dict(r.supplement.skipped)},
        "repairs": {k2: v for k2, v in vars(r.report).items() if k2 != "dropped_names"},
        "dropped_names": r.report.dropped_names, "alias_vars": r.alias_vars,
        "bpftool": r.bpftool, "seconds_pahole": round(r.seconds_pahole, 1),
        "seconds_generate": round(t_gen, 1), "seconds_module": round(t_mod, 1),
        "lines": r.lines(),
    }
    if boot:
        sys.path.insert(0, str(HERE.parent / "tests" / "gen"))
        import hashlib
        from qemu_accept import boot_check
        import build

        g = build.GUEST_ARCHES[k.arch]
        b = boot_check(k.vmlinuz(), ko, out / "serial.log", qemu=[g.qemu, *g.machine],
                       console=g.console, busybox=k.busybox())
        fig["boot"] = {kk: b[kk] for kk in ("booted", "insmod_rc", "accepted", "size")}
        fig["boot"]["identical"] = b["sha256"] == hashlib.sha256(  # type: ignore[index]
            (out / "vars.btf").read_bytes()).hexdigest()
    (out / "figures.json").write_text(json.dumps(fig, indent=1) + "\n")
    return fig


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "headers":
        print(kernel_headers(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "fakemod":
        import json
        fig = fakemod(argv[1], boot="--no-boot" not in argv)
        print("\n".join(fig.pop("lines")))  # type: ignore[arg-type]
        print(json.dumps(fig, indent=1))
        return 0 if fig.get("boot", {"accepted": True})["accepted"] else 1  # type: ignore
    if len(argv) < 2 or argv[1] not in TOOLS:
        print(f"usage: {Path(sys.argv[0]).name} <suite> {{{'|'.join(TOOLS)}}} "
              "(--path | --argv | -- ARGS...)", file=sys.stderr)
        return 2
    suite, tool, rest = argv[0], argv[1], argv[2:]
    if rest[:1] == ["--path"]:
        print(ensure_root(suite, tool))
        return 0
    if rest[:1] == ["--argv"]:
        print(shlex.join(tool_argv(suite, tool)))
        return 0
    if rest[:1] == ["--"]:
        rest = rest[1:]
    cmd = tool_argv(suite, tool)
    os.execv(cmd[0], [*cmd, *rest])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
