"""``drgn-btfvars``: the command line.

Subcommands (each one a ``_cmd_<name>(args) -> int`` registered in
:data:`COMMANDS` with a ``_add_<name>(parser)`` that declares its options, so
more can be added without touching the others):

``generate``
    variable BTF (VAR + DATASEC for every global) from a vmlinux with DWARF.
``build-module``
    ``btf_global_variables.ko`` for a kernel's Debian headers, carrying a
    variable BTF as its ``.BTF``.
``status``, ``dump``, ``verify``
    look at a kernel (a core dump or the running one): see
    :mod:`drgn_btfvars.cli_kernel`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["main", "build_parser", "COMMANDS"]


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vmlinux", type=Path, required=True, help="the vmlinux with DWARF")
    p.add_argument("--base", type=Path,
                   help="the kernel's final vmlinux .BTF (default: the vmlinux's .BTF section)")
    p.add_argument("-o", "--output", type=Path, required=True, help="variable BTF to write")
    p.add_argument("--pahole", help="pahole command (shell words; default $DRGN_BTFVARS_PAHOLE "
                   "or pahole on PATH; ≥ 1.28, ideally the kernel's CONFIG_PAHOLE_VERSION)")
    p.add_argument("--config", type=Path,
                   help="the kernel's .config (for CONFIG_PAHOLE_VERSION: picks the "
                   "--btf_features the kernel's own build used)")
    p.add_argument("--btf-features", help="override pahole's --btf_features list")
    p.add_argument("--bpftool", help="bpftool command used to check the output "
                   "(default: bpftool on PATH, if any)")
    p.add_argument("--raw-output", type=Path, help="also keep pahole's raw output here")
    p.add_argument("--no-check-prototypes", action="store_true",
                   help="do not check the base BTF's function prototypes against DWARF "
                        "(the plugin then cannot refuse a prototype that is another function's)")
    p.add_argument("--no-dwarf-supplement", action="store_true",
                   help="do not add the variables pahole leaves out (typed from DWARF via drgn)")


def _cmd_generate(a: argparse.Namespace) -> int:
    from .gen.generate import generate
    from .gen.pahole import PaholeError, config_pahole_version

    kp = config_pahole_version(a.config) if a.config else None
    try:
        r = generate(a.vmlinux, a.output, base_path=a.base, pahole=a.pahole, kernel_pahole=kp,
                     features=a.btf_features, bpftool=a.bpftool, raw_output=a.raw_output,
                     dwarf_supplement=not a.no_dwarf_supplement,
                     check_protos=not a.no_check_prototypes,
                     log=lambda s: print(s, file=sys.stderr))
    except PaholeError as e:
        print(f"drgn-btfvars generate: {e}", file=sys.stderr)
        return 1
    for line in r.lines():
        print(line)
    return 0 if r.bpftool is None or r.bpftool.startswith("ok") else 1


def _add_build_module(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headers", type=Path, required=True,
                   help="the kernel's linux-headers-<abi> directory (Debian)")
    p.add_argument("--btf", type=Path, required=True, help="the variable BTF to carry")
    p.add_argument("-o", "--output", type=Path, default=Path("btf_global_variables.ko"),
                   help="the .ko to write (or a directory)")
    p.add_argument("--host-root", type=Path,
                   help="a private root with a newer glibc for the kbuild helpers "
                   "(e.g. `python3 vmcores/toolroot.py trixie libc --path`)")
    p.add_argument("--workdir", type=Path, help="keep the kbuild tree here")
    p.add_argument("-v", "--verbose", action="store_true")


def _cmd_build_module(a: argparse.Namespace) -> int:
    from .gen.module import ModuleBuildError, build_module

    try:
        out = build_module(a.headers, a.btf, a.output, host_root=a.host_root,
                           workdir=a.workdir, verbose=a.verbose)
    except ModuleBuildError as e:
        print(f"drgn-btfvars build-module: {e}", file=sys.stderr)
        return 1
    print(f"{out}: .BTF = {a.btf} ({a.btf.stat().st_size} bytes)")
    return 0


#: name → (help, add-arguments, run)
COMMANDS: Dict[str, Tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "generate": ("generate a variable BTF from a vmlinux with DWARF", _add_generate,
                 _cmd_generate),
    "build-module": ("build btf_global_variables.ko carrying a variable BTF",
                     _add_build_module, _cmd_build_module),
}


def _kernel_commands() -> None:
    from .cli_kernel import COMMANDS as kernel_commands

    for name, entry in kernel_commands.items():
        COMMANDS.setdefault(name, entry)


_kernel_commands()

_EPILOG = """\
examples:
  drgn-btfvars status -c vmcore            what BTF and kallsyms a dump has
  drgn-btfvars status -k                   the same for the running kernel
  drgn-btfvars dump -c vmcore 'struct task_struct' init_task schedule
  drgn-btfvars dump --btf /sys/kernel/btf/vmlinux 'struct list_head'
  drgn-btfvars verify -c vmcore --truth truth.json.zst
  drgn-btfvars generate --vmlinux vmlinux-dbg -o vars.btf

exit status: 0 ok; 1 not found (a name, the vmlinux BTF) or a difference
from DWARF (verify); 2 bad usage or unreadable input.

'drgn-btfvars COMMAND --help' describes each command. Inside drgn the
plugin loads by itself: 'drgn -c vmcore' needs no option.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(
        prog="drgn-btfvars", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="drgn without DWARF: types from BTF, addresses from kallsyms. "
                    "These commands inspect a kernel (status, dump, verify) or make "
                    "the variable BTF that types every global (generate, build-module).",
        epilog=_EPILOG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_, add, run) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_,
                            epilog=_EPILOG.split("\n\n")[1])
        add(sp)
        sp.set_defaults(_run=run)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``drgn-btfvars`` console script."""
    a = build_parser().parse_args(argv)
    return int(a._run(a))


if __name__ == "__main__":
    sys.exit(main())
