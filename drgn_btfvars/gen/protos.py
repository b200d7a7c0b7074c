"""Which BTF function prototypes do not describe the function kallsyms has.

pahole encodes one ``FUNC`` per name, taken from one of the DWARF
subprograms of that name. When a kernel has several (a static in each of two
files, an inline fortify wrapper and the out-of-line definition, a weak stub
and its override), the prototype may be another function's: on 6.1
``mm_init`` is ``void (void)`` (init/main.c) while the function in kallsyms
is kernel/fork.c's ``struct mm_struct *(struct mm_struct *, ...)``.

Nothing in BTF or kallsyms can tell. The generator has the DWARF, so it
checks each ``FUNC`` whose name has exactly one function symbol (the plugin
refuses ambiguous names anyway) against the DWARF function at that symbol's
address, and lists the names whose prototype differs other than by
parameter names. The plugin refuses to type those functions
(:data:`drgn_btfvars.meta.BAD_PROTOS_ENUM_NAME`).
"""

from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

__all__ = ("ProtoCheck", "check_prototypes")


class ProtoCheck:
    """Result of :func:`check_prototypes`."""

    def __init__(self) -> None:
        self.checked = 0
        self.same = 0
        self.param_names_only = 0
        #: name → (BTF type name, DWARF type name or a reason)
        self.bad: Dict[str, Tuple[str, str]] = {}
        self.ambiguous = 0

    def summary(self) -> str:
        return (f"{self.checked} functions checked against DWARF: {self.same} identical, "
                f"{self.param_names_only} differing only in parameter names, "
                f"{len(self.bad)} with another function's prototype (refused); "
                f"{self.ambiguous} names ambiguous in the symbol table (refused by the plugin)")


def _function_symbols(
    vmlinux: Path,
) -> Tuple[Dict[str, Set[int]], str, bool, List[Tuple[int, int]]]:
    """Function symbols by name, the ELF machine, byte order, and the
    link-time ranges of the loadable segments."""
    from elftools.elf.elffile import ELFFile

    funcs: Dict[str, Set[int]] = {}
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        arch = elf["e_machine"]
        little = elf.little_endian
        loads = sorted((s["p_vaddr"], s["p_vaddr"] + s["p_memsz"]) for s in elf.iter_segments()
                       if s["p_type"] == "PT_LOAD" and s["p_memsz"])
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            raise ValueError(f"{vmlinux}: no .symtab")
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and sym.name and sym["st_value"]:
                funcs.setdefault(sym.name, set()).add(sym["st_value"])
    return funcs, arch, little, loads


def _platform(arch: str, little: bool):  # type: ignore[no-untyped-def]
    import drgn

    arches = {"EM_X86_64": drgn.Architecture.X86_64, "EM_AARCH64": drgn.Architecture.AARCH64}
    flags = drgn.PlatformFlags.IS_64_BIT
    if little:
        flags |= drgn.PlatformFlags.IS_LITTLE_ENDIAN
    return drgn.Platform(arches.get(arch, drgn.Architecture.UNKNOWN), flags)


def _dwarf_function(prog, name: str, address: int):  # type: ignore[no-untyped-def]
    """The DWARF function ``name`` whose code is at ``address`` (or None).

    drgn's lookup by name alone may return any DIE of that name (a
    declaration, another file's static, the abstract instance of a function
    also inlined elsewhere), and not always the same one. The line table
    names the file of the code at ``address``, and a file defines at most
    one function of a name: that file's definition is asked for first, and
    accepted with or without an address of its own in the DWARF. Only when
    the line table does not help is the name alone used, and then only an
    answer at ``address`` counts.
    """
    try:
        locs = prog.source_location(address)
        if len(locs):
            f = prog.function(name, locs[len(locs) - 1].filename)
            if f.address_ in (address, None, 0):
                return f
    except Exception:  # no line info, no definition in that file, unreadable DWARF
        pass
    try:
        f = prog.function(name)
    except Exception:
        return None
    return f if f.address_ == address else None


def check_prototypes(vmlinux: Path, base_btf: bytes) -> ProtoCheck:
    """Check every ``FUNC`` of the vmlinux BTF against the vmlinux DWARF."""
    import drgn

    from drgn_btfvars.btf import Btf, BtfError, BtfKind
    from drgn_btfvars.types import TypeConverter
    from drgn_btfvars.verify import param_names_only

    funcs, arch, little, loads = _function_symbols(vmlinux)
    platform = _platform(arch, little)
    dwarf = drgn.Program(platform)
    module = dwarf.extra_module(str(vmlinux), create=True)
    # One range per loadable segment, at link-time addresses: with more than
    # one range drgn applies no load bias, so DWARF addresses compare with
    # the symbol table's as they are.
    module.address_ranges = loads
    module.try_file(str(vmlinux), force=True)
    btf_prog = drgn.Program(platform)
    base = Btf(base_btf, name="vmlinux")
    conv = TypeConverter(btf_prog)
    result = ProtoCheck()
    for fid in base.ids_of_kind(BtfKind.FUNC):
        name = base.name(fid)
        addrs = funcs.get(name)
        if not addrs:
            continue
        if len(addrs) != 1:
            result.ambiguous += 1
            continue
        result.checked += 1
        try:
            btf_type = conv.type(base, fid)
            btf_name = btf_type.type_name()
        except BtfError as e:  # not typable (e.g. an enum of unknown signedness, before 6.0)
            result.bad[name] = (f"<not typable: {e}>", "")
            continue
        f = _dwarf_function(dwarf, name, next(iter(addrs)))
        if f is None:
            result.bad[name] = (btf_name, "no DWARF function at the symbol's address")
            continue
        dname = f.type_.type_name()
        if dname == btf_name:
            result.same += 1
        elif param_names_only(dname, btf_type):
            result.param_names_only += 1
        else:
            result.bad[name] = (btf_name, dname)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    from drgn_btfvars.sources import read_btf_file

    ap = argparse.ArgumentParser(description="List BTF FUNC prototypes that DWARF contradicts")
    ap.add_argument("vmlinux", type=Path)
    ap.add_argument("--base", type=Path, help="final .BTF (default: the vmlinux's own)")
    args = ap.parse_args(argv)
    base = read_btf_file(args.base or args.vmlinux)
    r = check_prototypes(args.vmlinux, base)
    print(r.summary())
    for name, (b, d) in sorted(r.bad.items()):
        print(f"  {name}: BTF {b!r} / DWARF {d!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
