"""C definitions of BTF types, written the way ``bpftool btf dump format c`` writes them.

:func:`definition` gives one named type's top-level definition (a struct,
union, enum or typedef, with anonymous member types written inline), and
:func:`declaration` one declarator (``struct list_head *next``), with the
conventions of the C dumper of Debian 12's bpftool 7.1, so that
the two can be compared line for line:

* pointers bind to the name (``int **p``), qualifiers of a pointer follow
  it (``char * const p``), other qualifiers precede (``const char *p``);
* qualifiers of arrays and of function prototypes are dropped;
* function prototypes list parameter types (names when BTF has them);
  no parameter gives ``(void)``, a trailing ``void`` parameter is
  ``...``, a lone one gives ``()``;
* holes in a struct are filled with anonymous bit fields (``long: 64;``)
  unless natural alignment explains them; a struct whose members are not
  naturally aligned gets ``__attribute__((packed))``;
* enums print each value (no ``mode()`` attribute for unusual sizes,
  which newer libbpf adds).

Not reproduced: libbpf's renaming of duplicate type names (``___2``
suffixes across a whole dump), the order of definitions and forward
declarations, ``preserve_access_index`` pragmas. No drgn here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from .format import BtfError, BtfKind

if TYPE_CHECKING:
    from .reader import Btf

__all__ = ["definition", "declaration", "align_of", "is_packed"]

_MODS = {BtfKind.CONST: "const", BtfKind.VOLATILE: "volatile", BtfKind.RESTRICT: "restrict"}
_TERMINAL = (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD, BtfKind.STRUCT,
             BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.FLOAT)
_MAX_CHAIN = 256


def _ptr_size(btf: "Btf") -> int:
    for tid in btf.find("long int", BtfKind.INT) or btf.find("long unsigned int", BtfKind.INT):
        return btf.type(tid).size
    return 8


def align_of(btf: "Btf", type_id: int, _depth: int = 0) -> int:
    """The alignment libbpf infers for a type (``btf__align_of``): the
    natural alignment of scalars (at most the pointer size), the largest
    member alignment of a struct, or 1 for a struct that cannot be naturally
    aligned (packed)."""
    if _depth > _MAX_CHAIN:
        raise BtfError(f"{btf.name(type_id)!r}: type chain too deep")
    t = btf.type(type_id)
    k = t.kind
    if k in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
        return min(_ptr_size(btf), t.size)
    if k == BtfKind.PTR:
        return _ptr_size(btf)
    if k in (BtfKind.TYPEDEF, BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT,
             BtfKind.TYPE_TAG):
        return align_of(btf, t.type, _depth + 1)
    if k == BtfKind.ARRAY:
        return align_of(btf, t.array_type, _depth + 1)
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        best = 1
        for m in t.members:
            a = align_of(btf, m.type, _depth + 1)
            best = max(best, a)
            if not m.bitfield_size and m.bit_offset % (8 * a):
                return 1
        return 1 if t.size % best else best
    raise BtfError(f"type id {type_id}: a {k.name} has no alignment")


def is_packed(btf: "Btf", type_id: int) -> bool:
    """Whether a struct's layout needs ``__attribute__((packed))``: a member
    that is not a bit field sits off its natural alignment, or the size is
    not a multiple of the largest member alignment."""
    t = btf.type(type_id)
    best = 1
    for m in t.members:
        a = align_of(btf, m.type)
        if a and not m.bitfield_size and m.bit_offset % (8 * a):
            return True
        best = max(best, a)
    return t.size % best != 0


def _indent(level: int) -> str:
    return "\t" * level


class _Writer:
    def __init__(self, btf: "Btf") -> None:
        self.btf = btf
        self.ptr_size = _ptr_size(btf)
        self.out: List[str] = []

    def w(self, s: str) -> None:
        self.out.append(s)

    # -- declarators ------------------------------------------------------

    def decl(self, type_id: int, name: str, level: int) -> None:
        """A declarator: the chain of types from ``type_id`` down to a
        named or terminal type, then :meth:`chain`."""
        stack: List[int] = []
        tid = type_id
        for _ in range(_MAX_CHAIN):
            stack.append(tid)
            if tid == 0:
                break
            t = self.btf.type(tid)
            if t.kind in (BtfKind.PTR, BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT,
                          BtfKind.FUNC_PROTO, BtfKind.TYPE_TAG):
                tid = t.type
            elif t.kind == BtfKind.ARRAY:
                tid = t.array_type
            elif t.kind in _TERMINAL:
                break
            else:
                raise BtfError(f"type id {tid}: a {t.kind.name} in a declaration")
        else:
            raise BtfError(f"type id {type_id}: declaration chain too long (cycle?)")
        self.chain(stack, name, level)

    def _mods_before(self, stack: List[int]) -> None:
        """Qualifiers of a terminal type, written before it."""
        while stack:
            k = self.btf.kind(stack[-1]) if stack[-1] else BtfKind.VOID
            if k not in _MODS:
                return
            self.w(_MODS[k] + " ")
            stack.pop()

    def _drop_mods(self, stack: List[int]) -> None:
        while stack and stack[-1] and self.btf.kind(stack[-1]) in _MODS:
            stack.pop()

    def _name(self, name: str, last_was_ptr: bool) -> None:
        self.w((" " if name and not last_was_ptr else "") + name)

    def chain(self, stack: List[int], name: str, level: int) -> None:
        btf = self.btf
        last_was_ptr = True
        while stack:
            tid = stack.pop()
            if tid == 0:
                self._mods_before(stack)
                self.w("void")
                last_was_ptr = False
                continue
            t = btf.type(tid)
            k = t.kind
            if k in (BtfKind.INT, BtfKind.FLOAT, BtfKind.TYPEDEF):
                self._mods_before(stack)
                self.w(t.name)
            elif k in (BtfKind.STRUCT, BtfKind.UNION):
                self._mods_before(stack)
                if t.name:
                    self.w(("struct " if k == BtfKind.STRUCT else "union ") + t.name)
                else:
                    self.struct_body(tid, level)
            elif k in (BtfKind.ENUM, BtfKind.ENUM64):
                self._mods_before(stack)
                if t.name:
                    self.w("enum " + t.name)
                else:
                    self.enum_body(tid, level)
            elif k == BtfKind.FWD:
                self._mods_before(stack)
                self.w(("union " if t.fwd_union else "struct ") + t.name)
            elif k == BtfKind.PTR:
                self.w("*" if last_was_ptr else " *")
            elif k in _MODS:
                self.w(" " + _MODS[k])
            elif k == BtfKind.TYPE_TAG:
                self._mods_before(stack)
                self.w(f' __attribute__((btf_type_tag("{t.name}")))')
            elif k == BtfKind.ARRAY:
                self._drop_mods(stack)
                if not stack:
                    self._name(name, last_was_ptr)
                    self.w(f"[{t.array_nelems}]")
                    return
                multidim = stack[-1] != 0 and btf.kind(stack[-1]) == BtfKind.ARRAY
                if name and not last_was_ptr:
                    self.w(" ")
                if not multidim:
                    self.w("(")
                self.chain(stack, name, level)
                if not multidim:
                    self.w(")")
                self.w(f"[{t.array_nelems}]")
                return
            elif k == BtfKind.FUNC_PROTO:
                self._drop_mods(stack)
                if stack:
                    self.w(" (")
                    self.chain(stack, name, level)
                    self.w(")")
                else:
                    self._name(name, last_was_ptr)
                self.w("(")
                params = list(t.params)
                for i, p in enumerate(params):
                    if i:
                        self.w(", ")
                    self.decl(p.type, p.name, level)
                if t.variadic and params:
                    self.w(", ...")
                elif not params and not t.variadic:
                    self.w("void")
                self.w(")")
                return
            else:
                raise BtfError(f"type id {tid}: a {k.name} in a declaration")
            last_was_ptr = k == BtfKind.PTR
        self._name(name, last_was_ptr)

    # -- bodies -----------------------------------------------------------

    def padding(self, cur: int, nxt: int, next_align: int, in_bitfield: bool,
                level: int) -> None:
        """Anonymous bit fields filling [cur, nxt) bits where natural
        alignment does not explain the hole."""
        if cur >= nxt:
            return
        pads = (("long", self.ptr_size * 8), ("int", 32), ("short", 16), ("char", 8))
        new = cur
        pad_type, pad_bits = pads[-1]
        for pad_type, pad_bits in pads:
            new = -(-cur // pad_bits) * pad_bits
            if new <= nxt:
                break
        if cur < new <= nxt:
            if (in_bitfield
                    or (new == nxt and -(-cur // (next_align * 8)) * next_align * 8 != new)
                    or (new != nxt and nxt - new <= new - cur)):
                self.w(f"\n{_indent(level)}{pad_type}: {new - cur if in_bitfield else 0};")
            cur = new
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                self.w(f"\n{_indent(level)}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for small_type, small_bits in reversed(pads):
                if small_bits >= bits:
                    self.w(f"\n{_indent(level)}{small_type}: {bits};")
                    cur += bits
                    break

    def struct_body(self, tid: int, level: int) -> None:
        btf = self.btf
        t = btf.type(tid)
        is_struct = t.kind == BtfKind.STRUCT
        packed = is_struct and is_packed(btf, tid)
        self.w(("struct" if is_struct else "union") + (f" {t.name}" if t.name else "") + " {")
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_align = 1 if packed else align_of(btf, m.type)
            in_bitfield = prev_bitfield and m.bitfield_size != 0
            self.padding(off, m.bit_offset, m_align, in_bitfield, level + 1)
            self.w(f"\n{_indent(level + 1)}")
            self.decl(m.type, m.name, level + 1)
            if m.bitfield_size:
                self.w(f": {m.bitfield_size}")
                off = m.bit_offset + m.bitfield_size
                prev_bitfield = True
            else:
                try:
                    size = max(0, btf.size_of(m.type))
                except BtfError:
                    size = 0
                off = m.bit_offset + 8 * size
                prev_bitfield = False
            self.w(";")
        if is_struct:
            self.padding(off, t.size * 8, align_of(btf, tid), False, level + 1)
        if t.members or t.size:
            self.w(f"\n{_indent(level)}}}")
        else:
            self.w("}")
        if packed:
            self.w(" __attribute__((packed))")

    def enum_body(self, tid: int, level: int) -> None:
        t = self.btf.type(tid)
        self.w("enum" + (f" {t.name}" if t.name else ""))
        if not t.enumerators:
            return
        self.w(" {")
        is64 = t.kind == BtfKind.ENUM64
        for e in t.enumerators:
            value = e.value
            if not t.kind_flag and value < 0:
                value &= (1 << (64 if is64 else 32)) - 1
            suffix = ("LL" if t.kind_flag else "ULL") if is64 else ""
            self.w(f"\n{_indent(level + 1)}{e.name} = {value}{suffix},")
        self.w(f"\n{_indent(level)}}}")


def declaration(btf: "Btf", type_id: int, name: str = "") -> str:
    """One C declarator of ``type_id`` named ``name`` (anonymous struct,
    union and enum types written inline), e.g. ``const char *(*fn)(int)``."""
    w = _Writer(btf)
    w.decl(type_id, name, 0)
    return "".join(w.out)


def definition(btf: "Btf", type_id: int) -> str:
    """The top-level C definition of a STRUCT, UNION, ENUM, ENUM64, TYPEDEF
    or FWD, ending with ``;``; for a VAR, its declaration
    (``struct task_struct init_task;``); for a FUNC, its prototype."""
    w = _Writer(btf)
    t = btf.type(type_id)
    k = t.kind
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        w.struct_body(type_id, 0)
    elif k in (BtfKind.ENUM, BtfKind.ENUM64):
        w.enum_body(type_id, 0)
    elif k == BtfKind.TYPEDEF:
        w.w("typedef ")
        w.decl(t.type, t.name, 0)
    elif k == BtfKind.FWD:
        w.w(("union " if t.fwd_union else "struct ") + t.name)
    elif k in (BtfKind.VAR, BtfKind.FUNC):
        w.decl(t.type, t.name, 0)
    else:
        raise BtfError(f"type id {type_id}: a {k.name} has no C definition")
    return "".join(w.out) + ";"


def find_named(btf: "Btf", name: str) -> Optional[int]:
    """The id of a type named like C: ``struct x``, ``union x``, ``enum x``,
    or a typedef name; ``None`` if ``btf`` has none."""
    word, _, tag = name.partition(" ")
    kinds = {"struct": (BtfKind.STRUCT, BtfKind.FWD), "union": (BtfKind.UNION, BtfKind.FWD),
             "enum": (BtfKind.ENUM, BtfKind.ENUM64)}.get(word)
    if kinds is None:
        kinds, tag = (BtfKind.TYPEDEF, BtfKind.INT, BtfKind.FLOAT), name
    for kind in kinds:
        ids = btf.find(tag.strip(), kind)
        if ids:
            return ids[0]
    return None
