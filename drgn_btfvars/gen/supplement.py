"""Add the variables pahole leaves out, typed from DWARF through drgn.

pahole's ``global_var`` skips a defined variable when the DWARF declaration
it points to (``DW_AT_specification``) has an incomplete type: a global
declared ``extern const char linux_proc_banner[];`` in a header and defined
with a size in a ``.c`` file is typed from the declaration, has size 0 and is
dropped ("zero-sized").  That is ~3% of the kernel's globals (857 of the 983
variables missing on 6.12 are in ``.rodata``: ``sys_call_table``,
``x86_nops``, ``vmstat_text`` …).

:func:`supplement` finds them from the vmlinux symbol table (objects of
non-zero size, in a section that has a DATASEC, at an offset no VAR covers),
asks drgn (the vmlinux's DWARF, no core dump) for the variable of that name
**at that address** (same-named statics are skipped unless the address
matches), checks that the DWARF type's size is the symbol's size, converts
that type to BTF on top of the base (named types are taken from the base by
name and size; pointers, qualifiers, arrays — kept multi-dimensional, as
DWARF has them — and function prototypes are built), and adds a VAR and a
DATASEC entry.  The result is new "raw" split BTF that :func:`.repair.repair`
then deduplicates against the base and checks like pahole's own output.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from drgn_btfvars.btf import (
    BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_STATIC, Btf, BtfBuilder, BtfKind,
)

__all__ = ["SupplementReport", "Unsupported", "DrgnToBtf", "supplement"]

#: pahole also leaves out, on purpose, names with a few prefixes (``__tpstrtab_``,
#: ``__UNIQUE_ID`` …); they are real typed globals that kallsyms lists (772 of
#: the 798 still missing on 6.12 were ``__tpstrtab_*``), so they are added here.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Unsupported(Exception):
    """A DWARF type that cannot be expressed on top of the base BTF."""


@dataclasses.dataclass
class SupplementReport:
    """What :func:`supplement` found and added."""

    candidates: int = 0
    added: int = 0
    new_types: int = 0
    completed: int = 0             # ``T []`` declarations given their length from the symbol
    unflattened: int = 0           # pahole's flattened multi-dimensional array VARs retyped
    skipped: Counter = dataclasses.field(default_factory=Counter)
    added_names: List[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        why = ", ".join(f"{n} {k}" for k, n in self.skipped.most_common())
        return (f"variables pahole left out, typed from DWARF: {self.added} of {self.candidates} "
                f"candidates added ({self.completed} incomplete arrays sized from their "
                f"symbol; {self.new_types} new type records before dedup)"
                + (f"; skipped: {why}" if why else "")
                + f"; {self.unflattened} flattened multi-dimensional array variables retyped "
                "as DWARF has them")


def _canon_int(name: str) -> str:
    """One spelling per C integer type ("long unsigned int" == "unsigned long")."""
    w = name.split()
    if "char" in w or name == "_Bool":
        return " ".join(w)
    s = "unsigned " if "unsigned" in w else ""
    n_long = w.count("long")
    core = "long long" if n_long >= 2 else "long" if n_long else "short" if "short" in w else "int"
    return s + core


class DrgnToBtf:
    """Convert drgn types into BTF ids: base types by name, the rest built in ``b``."""

    def __init__(self, base: Btf, b: BtfBuilder) -> None:
        self.base = base
        self.b = b
        self._ints: Dict[str, int] = {}
        self._index_type = 0
        for tid in range(1, base.end_id):
            k = base.kind(tid)
            if k == BtfKind.INT:
                self._ints.setdefault(_canon_int(base.type(tid).name), tid)
            elif k == BtfKind.ARRAY and not self._index_type:
                self._index_type = base.type(tid).array_index_type
        if not self._index_type:
            self._index_type = self._ints.get("int") or b.add_int("int", 4, 1)
        self._memo: Dict[Tuple, int] = {}
        self.new_types = 0

    def _add(self, key: Tuple, make) -> int:
        tid = self._memo.get(key)
        if tid is None:
            tid = make()
            self.new_types += 1
            self._memo[key] = tid
        return tid

    def _named(self, name: Optional[str], kinds: Tuple[BtfKind, ...], size: Optional[int]) -> int:
        if not name:
            raise Unsupported("anonymous struct/union/enum")
        best = None
        for k in kinds:
            for tid in self.base.find_all(name, k):
                if size is None or self.base.size_of(tid) == size:
                    return tid
                best = best or tid
        if best is not None and size is None:
            return best
        raise Unsupported(f"no base type {name!r} of size {size}")

    def convert(self, t) -> int:
        """The BTF id of drgn type ``t``."""
        from drgn import Qualifiers, TypeKind

        q = t.qualifiers
        if q:
            tid = self.convert(t.unqualified())
            if q & Qualifiers.VOLATILE:
                tid = self._add(("volatile", tid), lambda i=tid: self.b.add_volatile(i))
            if q & Qualifiers.CONST:
                tid = self._add(("const", tid), lambda i=tid: self.b.add_const(i))
            if q & Qualifiers.RESTRICT:
                tid = self._add(("restrict", tid), lambda i=tid: self.b.add_restrict(i))
            return tid
        k = t.kind
        if k == TypeKind.VOID:
            return 0
        if k in (TypeKind.INT, TypeKind.BOOL):
            tid = self._ints.get(_canon_int(t.name))
            if tid is None or self.base.size_of(tid) != t.size:
                raise Unsupported(f"no base integer {t.name}")
            return tid
        if k == TypeKind.FLOAT:
            return self._named(t.name, (BtfKind.FLOAT,), t.size)
        if k in (TypeKind.STRUCT, TypeKind.CLASS):
            return self._named(t.tag, (BtfKind.STRUCT,), t.size if t.is_complete() else None)
        if k == TypeKind.UNION:
            return self._named(t.tag, (BtfKind.UNION,), t.size if t.is_complete() else None)
        if k == TypeKind.ENUM:
            from drgn import sizeof
            return self._named(t.tag, (BtfKind.ENUM, BtfKind.ENUM64),
                               sizeof(t) if t.is_complete() else None)
        if k == TypeKind.TYPEDEF:
            from drgn import sizeof
            try:
                size = sizeof(t)
            except (ValueError, TypeError):
                size = None
            return self._named(t.name, (BtfKind.TYPEDEF,), size)
        if k == TypeKind.POINTER:
            target = self.convert(t.type)
            return self._add(("ptr", target), lambda: self.b.add_ptr(target))
        if k == TypeKind.ARRAY:
            elem = self.convert(t.type)
            n = t.length or 0
            return self._add(("array", elem, n),
                             lambda: self.b.add_array(elem, self._index_type, n))
        if k == TypeKind.FUNCTION:
            ret = self.convert(t.type)
            params = tuple((p.name or "", self.convert(p.type)) for p in t.parameters)
            key = ("proto", ret, params, bool(t.is_variadic))
            return self._add(key, lambda: self.b.add_func_proto(ret, list(params),
                                                                bool(t.is_variadic)))
        raise Unsupported(f"type kind {k.name}")


def _complete_array(prog, typ, size: int, rep: "SupplementReport"):
    """``T []`` (drgn may answer a name with its declaration) → ``T [size / sizeof(T)]``.

    drgn's lookup by name is not deterministic when a name has a declaration
    and a definition; the symbol's size gives the definition's length, so the
    result does not depend on which DIE drgn picked.
    """
    from drgn import TypeKind, sizeof

    if typ.kind != TypeKind.ARRAY or typ.length is not None:
        return typ
    try:
        esz = sizeof(typ.type)
    except (ValueError, TypeError):
        return typ
    if esz <= 0 or size % esz:
        return typ
    rep.completed += 1
    return prog.array_type(typ.type, size // esz, qualifiers=typ.qualifiers)


def _drgn_vmlinux(vmlinux: Path):
    """A drgn Program with ``vmlinux``'s DWARF at its link-time addresses (no core)."""
    import drgn
    from elftools.elf.elffile import ELFFile

    with open(vmlinux, "rb") as f:
        loads = [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"]) for s in ELFFile(f).iter_segments()
                 if s["p_type"] == "PT_LOAD"]
    prog = drgn.Program(drgn.host_platform)
    m = prog.extra_module("vmlinux", 0, create=True)
    # drgn biases a module by (range start - first PT_LOAD address): make it 0.
    m.address_range = (loads[0][0], max(e for _, e in loads))
    m.try_file(str(vmlinux), force=True)
    if m.debug_file_path is None:
        raise RuntimeError(f"drgn could not load the DWARF of {vmlinux}")
    return prog


_QUALS = (BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT, BtfKind.TYPE_TAG)


def _btf_flat_array(btf: Btf, tid: int) -> bool:
    """``tid`` is an array whose element is not an array (qualifiers skipped)."""
    def strip(i: int) -> int:
        while i and btf.kind(i) in _QUALS:
            i = btf.type(i).type
        return i
    tid = strip(tid)
    if not tid or btf.kind(tid) != BtfKind.ARRAY:
        return False
    elem = strip(btf.type(tid).array_type)
    return not elem or btf.kind(elem) != BtfKind.ARRAY


def _dwarf_multidim(t) -> bool:
    from drgn import TypeKind

    u = t.unqualified()
    return u.kind == TypeKind.ARRAY and u.type.unqualified().kind == TypeKind.ARRAY


def _flattened_vars(split: Btf, datasecs: List[int], prog, addr_of: Dict[str, int],
                    rep: "SupplementReport") -> Dict[int, object]:
    """pahole VARs whose multi-dimensional DWARF array type was flattened → DWARF type."""
    from drgn import sizeof

    out: Dict[int, object] = {}
    for d in datasecs:
        dt = split.type(d)
        saddr = addr_of.get(dt.name)
        if saddr is None:
            continue
        for s in dt.secinfos:
            v = split.type(s.type)
            if not _btf_flat_array(split, v.type):
                continue
            try:
                obj = prog.variable(v.name)
                t = obj.type_
                if obj.address_ != saddr + s.offset or not _dwarf_multidim(t) \
                        or sizeof(t) != s.size:
                    continue
            except Exception:  # not in DWARF / incomplete: keep pahole's type
                continue
            out[s.type] = t
    return out


def supplement(raw: bytes, base: Btf, vmlinux: Path, *,
               unflatten: bool = True) -> Tuple[bytes, SupplementReport]:
    """pahole's raw split BTF plus VARs for the variables it left out.

    With ``unflatten``, VARs whose type pahole (≤ 1.30) flattened (``int
    [3][2]`` encoded as ``int [6]``) are retyped with the nested arrays DWARF
    has (only top-level variables: member types live in the base).
    """
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    rep = SupplementReport()
    split = Btf(raw, base, name="pahole output")
    datasecs = [d for d in split.datasecs() if d >= split.first_id]
    ds_names = {split.type(d).name: d for d in datasecs}
    covered: Dict[str, Set[int]] = {
        split.type(d).name: {s.offset for s in split.type(d).secinfos} for d in datasecs}

    # Candidates from the ELF symbol table.
    cands: List[Tuple[str, str, int, int, bool]] = []  # (name, section, offset, size, global)
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        secs = [(s.name, s["sh_addr"]) for s in elf.iter_sections()]
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] != "STT_OBJECT" or sym["st_size"] == 0:
                    continue
                shndx = sym["st_shndx"]
                if not isinstance(shndx, int) or shndx >= len(secs):
                    continue
                sname, saddr = secs[shndx]
                if sname not in ds_names:
                    continue
                off = sym["st_value"] - saddr
                if off in covered[sname] or not 0 <= off < 2 ** 32:
                    continue
                name = sym.name
                if not _IDENT.match(name):
                    rep.skipped["not a C identifier (compiler-made local)"] += 1
                    continue
                cands.append((name, sname, off, sym["st_size"],
                              sym["st_info"]["bind"] == "STB_GLOBAL"))
    rep.candidates = len(cands) + sum(rep.skipped.values())

    addr_of: Dict[str, int] = {}
    for n, a in secs:
        addr_of.setdefault(n, a)
    prog = _drgn_vmlinux(vmlinux) if cands or unflatten else None
    retype = _flattened_vars(split, datasecs, prog, addr_of, rep) if unflatten else {}

    # Copy pahole's types (DATASECs last, retyped VARs after the new types),
    # then the new types and VARs.
    b = BtfBuilder(base)
    skip = set(datasecs) | set(retype)
    order = [t for t in range(split.first_id, split.end_id) if t not in skip]
    new_id = {t: b.first_id + i for i, t in enumerate(order)}

    def remap(i: int) -> int:
        return new_id.get(i, i)

    for t in order:
        b.add_type(split.type(t), remap)
    extra: Dict[str, List[Tuple[int, int, int]]] = {n: [] for n in ds_names}
    conv = DrgnToBtf(base, b)
    for vid, t in retype.items():
        v = split.type(vid)
        try:
            new_id[vid] = b.add_var(v.name, conv.convert(t), v.linkage)
            rep.unflattened += 1
        except Unsupported:
            new_id[vid] = b.add_type(v, remap)
    if cands:
        for name, sname, off, size, is_global in cands:
            try:
                obj = prog.variable(name)
                typ = obj.type_
            except Exception:  # not found in DWARF, or drgn cannot read it
                rep.skipped["no DWARF variable"] += 1
                continue
            if obj.address_ != addr_of[sname] + off:
                rep.skipped["DWARF variable of that name elsewhere"] += 1
                continue
            typ = _complete_array(prog, typ, size, rep)
            try:
                from drgn import sizeof
                if sizeof(typ) != size:
                    rep.skipped["DWARF size differs from the symbol's"] += 1
                    continue
                tid = conv.convert(typ)
            except Unsupported:
                rep.skipped["type not expressible on the base"] += 1
                continue
            except (ValueError, TypeError):
                rep.skipped["incomplete DWARF type"] += 1
                continue
            vid = b.add_var(name, tid, BTF_VAR_GLOBAL_ALLOCATED if is_global else BTF_VAR_STATIC)
            extra[sname].append((vid, off, size))
            rep.added += 1
            rep.added_names.append(name)
    rep.new_types = conv.new_types
    for d in datasecs:
        t = split.type(d)
        # pahole sizes a DATASEC to its last variable's end: grow it to cover ours.
        size = max([t.size] + [o + n for _, o, n in extra[t.name]])
        b.add_datasec(t.name, size,
                      [(remap(s.type), s.offset, s.size) for s in t.secinfos] + extra[t.name])
    return b.to_bytes(), rep
