"""``drgn-btfvars status | dump | verify``: the commands that look at a kernel.

Each takes the kernel the way drgn does: ``-c VMCORE`` for a core dump
(``/proc/kcore`` too), or ``-k`` for the running kernel (the default).
``dump`` can also read a BTF file alone (``--btf FILE [--base FILE]``).

Exit status (all three): 0 when everything asked for was found (and, for
``verify``, nothing differs from DWARF); 1 when something was not found,
no vmlinux BTF could be read, or ``verify`` found a difference; 2 for bad
usage or input that cannot be read (a missing core dump, a corrupt BTF
file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

__all__ = ("COMMANDS", "EXIT_OK", "EXIT_NOT_FOUND", "EXIT_USAGE")

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    """Bad input: reported on stderr, exit status 2."""


def _add_kernel_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the kernel (as drgn takes it)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("-c", "--core", metavar="VMCORE", type=Path,
                   help="a core dump (ELF vmcore, kdump file or /proc/kcore)")
    x.add_argument("-k", "--kernel", action="store_true",
                   help="the running kernel (the default; needs root)")
    g.add_argument("--vars", metavar="FILE", type=Path,
                   help="a variable BTF (raw, or btf_global_variables.ko) to use instead of "
                        "the loaded fake module or the search path")
    g.add_argument("--vmlinux", metavar="FILE", type=Path,
                   help="vmlinux BTF (raw, or an ELF file with .BTF) instead of the kernel's own")
    g.add_argument("--stock", action="store_true",
                   help="ignore any variable BTF: behave as on a stock kernel (degraded mode)")


def _open(a: argparse.Namespace) -> Any:
    """A drgn program for the kernel the options name, with this plugin
    enabled as the options say; raises :class:`_UsageError`."""
    # drgn runs plugins, ours included, when the target is set: this
    # program is enabled below with the options given instead.
    os.environ["DRGN_BTFVARS_DISABLE"] = "1"
    import drgn

    from drgn_btfvars.plugin import enable

    if a.stock:
        os.environ.pop("DRGN_BTFVARS_VARS", None)
    for path in (a.vars, a.vmlinux):
        if path is not None and not path.is_file():
            raise _UsageError(f"{path}: no such file")
    if a.core is not None and not a.core.exists():
        raise _UsageError(f"{a.core}: no such file")
    prog = drgn.Program()
    try:
        if a.core is not None:
            prog.set_core_dump(str(a.core))
        else:
            prog.set_kernel()
    except (OSError, ValueError, drgn.FaultError, drgn.MissingDebugInfoError) as e:
        raise _UsageError(f"cannot open {'the running kernel' if a.core is None else a.core}: "
                          f"{e}") from e
    except Exception as e:  # drgn raises plain Exception for unrecognized files
        raise _UsageError(f"cannot open {a.core}: {e}") from e
    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        raise _UsageError(f"{a.core}: not a Linux kernel core dump")
    if a.stock and a.vars is not None:
        raise _UsageError("--stock ignores every variable BTF: no --vars with it")
    kb = enable(prog, vmlinux=a.vmlinux, vars_btf=a.vars,
                use_fake_module=False if a.stock else None)
    return prog, kb


def _err(cmd: str, msg: str) -> None:
    print(f"drgn-btfvars {cmd}: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- status

def _add_status(p: argparse.ArgumentParser) -> None:
    _add_kernel_args(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def _cmd_status(a: argparse.Namespace) -> int:
    try:
        prog, kb = _open(a)
    except _UsageError as e:
        _err("status", str(e))
        return EXIT_USAGE
    kb.kallsyms()  # so that the status says what kallsyms has
    if a.json:
        print(json.dumps(kb.status(), indent=2, sort_keys=True, default=str))
    else:
        print(kb.status_text())
    return EXIT_OK if kb.vmlinux() is not None else EXIT_NOT_FOUND


# --------------------------------------------------------------------------- dump

def _add_dump(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="a type ('struct task_struct', 'union bpf_attr', 'enum pid_type', "
                        "'u64'), a variable ('init_task', 'jiffies_64') or a function "
                        "('schedule')")
    _add_kernel_args(p)
    g = p.add_argument_group("or a BTF file alone (no kernel)")
    g.add_argument("--btf", metavar="FILE", type=Path, help="raw BTF or an ELF file with .BTF")
    g.add_argument("--base", "-B", metavar="FILE", type=Path,
                   help="the base BTF of a split BTF given with --btf")
    p.add_argument("--address", action="store_true",
                   help="precede each variable or function with a comment giving its address")


def _c_declare(type_name: str, name: str) -> str:
    """A declaration from a drgn type name: ``unsigned long [3]`` →
    ``unsigned long avenrun[3]`` (the degraded-mode table's types are
    plain types, pointers and arrays of them)."""
    m = re.match(r"^(.*?)\s*((?:\[\d*\])+)$", type_name)
    if m:
        return _c_declare(m.group(1), name + m.group(2))
    return f"{type_name}{name}" if type_name.endswith("*") else f"{type_name} {name}"


def _btf_candidates(btfs: List[Tuple[str, Any]], name: str) -> List[Tuple[str, Any, int]]:
    """(source, Btf, id) of every definition of ``name`` as a type, a VAR or
    a FUNC in ``btfs`` (vmlinux first)."""
    from drgn_btfvars.btf import BtfKind

    out = []
    for label, btf in btfs:
        word = name.split(" ", 1)[0]
        if word in ("struct", "union", "enum"):
            kinds = {"struct": (BtfKind.STRUCT,), "union": (BtfKind.UNION,),
                     "enum": (BtfKind.ENUM, BtfKind.ENUM64)}[word]
            tag = name.split(" ", 1)[1].strip()
        else:
            kinds, tag = (BtfKind.TYPEDEF, BtfKind.INT, BtfKind.FLOAT, BtfKind.VAR,
                          BtfKind.FUNC), name
        for kind in kinds:
            for tid in btf.find(tag, kind):
                if btf.type(tid).kind == BtfKind.INT:
                    continue  # a base type: nothing to define
                out.append((label, btf, tid))
        if out and word in ("struct", "union", "enum"):
            break  # a module's same-named private type is another type
    return out


def _dump_btf_file(a: argparse.Namespace) -> int:
    from drgn_btfvars import sources
    from drgn_btfvars.btf import Btf, BtfError, cdump

    try:
        base = Btf(sources.read_btf_file(a.base), name=str(a.base)) if a.base else None
        btf = Btf(sources.read_btf_file(a.btf), base=base, name=str(a.btf))
    except (BtfError, sources.BtfSourceError, OSError) as e:
        _err("dump", str(e))
        return EXIT_USAGE
    btfs = [(str(a.btf), btf)] + ([(str(a.base), base)] if base is not None else [])
    status = EXIT_OK
    for name in a.names:
        found = _btf_candidates(btfs, name)
        if not found:
            _err("dump", f"{name}: not in {a.btf}")
            status = EXIT_NOT_FOUND
        for _, b, tid in found:
            print(cdump.definition(b, tid) + "\n")
    return status


def _cmd_dump(a: argparse.Namespace) -> int:
    from drgn_btfvars.btf import BtfError, BtfKind, cdump

    if a.btf is not None:
        if a.core is not None or a.kernel:
            _err("dump", "--btf reads a file alone: no -c/-k with it")
            return EXIT_USAGE
        return _dump_btf_file(a)
    if a.base is not None:
        _err("dump", "--base goes with --btf")
        return EXIT_USAGE
    try:
        prog, kb = _open(a)
    except _UsageError as e:
        _err("dump", str(e))
        return EXIT_USAGE
    if kb.vmlinux() is None:
        _err("dump", "no vmlinux BTF: " + "; ".join(kb.warnings))
        return EXIT_NOT_FOUND
    btfs: List[Tuple[str, Any]] = [("vmlinux", kb.vmlinux())]
    if kb.vars() is not None:
        btfs.append(("variable BTF", kb.vars()))
    btfs += [(f"module {n}", kb.module_btf(n)) for n in kb.module_names()
             if kb.module_btf(n) is not None]
    status = EXIT_OK
    for name in a.names:
        found = _btf_candidates(btfs, name)
        printed = False
        for label, btf, tid in found:
            kind = btf.type(tid).kind
            if kind == BtfKind.VAR:
                objs = [o for o in kb.variables(name)]
                if not objs:
                    continue  # a VAR we cannot place (refused, or no address)
                if a.address:
                    print(f"/* {name} at {objs[0].address_:#x} */")
            elif kind == BtfKind.FUNC:
                try:
                    fn = prog.function(name)
                except LookupError:
                    continue  # refused prototype, or ambiguous name
                if a.address:
                    print(f"/* {name} at {fn.address_:#x} */")
            elif label.startswith("module "):
                print(f"/* {label} */")
            try:
                print(cdump.definition(btf, tid) + "\n")
            except BtfError as e:
                _err("dump", f"{name}: {e}")
                status = EXIT_NOT_FOUND
            printed = True
            if kind in (BtfKind.VAR, BtfKind.FUNC):
                break
        if not printed and kb.vars() is None:
            obj = kb.declarations().object(name)
            if obj is not None:
                if a.address:
                    print(f"/* {name} at {obj.address_:#x} (declaration table) */")
                print(_c_declare(obj.type_.type_name(), name) + ";\n")
                printed = True
        if not printed:
            _err("dump", f"{name}: not found in this kernel's BTF")
            status = EXIT_NOT_FOUND
    return status


# --------------------------------------------------------------------------- verify

def _add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truth", metavar="FILE", type=Path, required=True,
                   help="the DWARF truth of this dump (vmcores/<key>/truth.json.zst, made by "
                        "vmcores/truth.py with the -dbg vmlinux)")
    _add_kernel_args(p)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list the differences and known losses")


def _load_truth(path: Path) -> Dict[str, Any]:
    data = path.read_bytes()
    if path.suffix == ".zst":
        import zstandard

        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return json.loads(data)


def _cmd_verify(a: argparse.Namespace) -> int:
    from drgn import FindObjectFlags

    from drgn_btfvars import verify

    try:
        truth = _load_truth(a.truth)
        for k in ("variables", "types", "enums", "functions", "kernel"):
            if k not in truth:
                raise _UsageError(f"{a.truth}: not a truth file (no {k!r})")
        prog, kb = _open(a)
    except _UsageError as e:
        _err("verify", str(e))
        return EXIT_USAGE
    except (OSError, ValueError, ImportError) as e:
        _err("verify", f"{a.truth}: {e}")
        return EXIT_USAGE
    build = kb.vmcoreinfo().get("BUILD-ID", "").lower()
    if build and truth["kernel"].get("build_id") and truth["kernel"]["build_id"] != build:
        _err("verify", f"{a.truth} is the truth of build {truth['kernel']['build_id']}, "
             f"this kernel is {build}")
        return EXIT_USAGE
    if kb.vmlinux() is None:
        _err("verify", "no vmlinux BTF: " + "; ".join(kb.warnings))
        return EXIT_NOT_FOUND
    reports = [
        ("variables", verify.compare_variables(truth["variables"], kb.variables)),
        ("struct/union layouts", verify.compare_types(truth["types"], kb.types_named)),
        ("enums", verify.compare_enums(truth["enums"], kb.types_named)),
        ("functions", verify.compare_functions(
            truth["functions"],
            lambda n: kb.object_finder(prog, n, FindObjectFlags.FUNCTION, None))),
    ]
    bad = 0
    for _, r in reports:
        print(r.summary())
        bad += r.count("mismatched")
        for bucket in ("mismatched", "known_loss") if a.verbose else ("mismatched",):
            if r.count(bucket):
                print(f" {bucket}:\n{r.reasons(bucket, limit=50)}")
    if kb.vars() is None:
        from drgn_btfvars.decls import check_against_truth

        res = check_against_truth(kb, truth["variables"])
        print(f"declarations (degraded mode): {len(res['matched'])} match DWARF, "
              f"{len(res['mismatched'])} mismatched, {len(res['unverifiable'])} unverifiable, "
              f"{len(res['skipped'])} skipped, {len(res['absent'])} not in this kernel")
        for bucket in ("mismatched", "unverifiable"):
            for name, why in res[bucket]:
                print(f"  {bucket}: {name}: {why}")
        bad += len(res["mismatched"]) + len(res["unverifiable"])
    print("OK: nothing BTF gives differs from DWARF" if not bad else
          f"DIFFERENT: {bad} items differ from DWARF")
    return EXIT_OK if not bad else EXIT_NOT_FOUND


#: name → (help, add-arguments, run), merged into :data:`drgn_btfvars.cli.COMMANDS`.
COMMANDS = {
    "status": ("what BTF and kallsyms were found for a kernel, counts, coverage, warnings",
               _add_status, _cmd_status),
    "dump": ("print a type, a variable or a function as C (like bpftool btf dump format c)",
             _add_dump, _cmd_dump),
    "verify": ("compare what BTF gives with a DWARF truth file of the same dump",
               _add_verify, _cmd_verify),
}
