"""BtfBuilder: emit valid BTF, base or split over a given base, either byte order."""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .format import (
    BTF_FUNC_STATIC, BTF_VAR_GLOBAL_ALLOCATED, BTF_VERSION, HDR_LEN_LAYOUT, HDR_LEN_V1,
    KIND_ELEM_SIZE, KIND_INFO_SIZE, MAX_KIND, MAX_VLEN, BtfHeader, BtfKind,
)
from .reader import Btf
from .types import BtfType

__all__ = ["BtfBuilder"]

_U32 = 0xFFFFFFFF


class BtfBuilder:
    """Build a BTF blob type by type; ``to_bytes()`` gives the bytes.

    With ``base``, the result is split BTF over it: ids start at ``base.end_id``,
    string offsets at the base chain's string length, and strings the base chain
    already holds are reused.  ``layout=True`` also writes the 2026 layout
    section (hdr_len 32) describing every kind the builder knows plus any
    ``extra_layout`` ({kind: (info_sz, elem_sz)}) for raw records of other kinds.
    """

    def __init__(self, base: Optional[Btf] = None, *, byteorder: str = "little",
                 layout: bool = False,
                 extra_layout: Optional[Mapping[int, Tuple[int, int]]] = None) -> None:
        if byteorder not in ("little", "big"):
            raise ValueError("byteorder must be 'little' or 'big'")
        self.base = base
        self.byteorder = byteorder
        self._fmt = "<" if byteorder == "little" else ">"
        self.layout = layout or bool(extra_layout)
        self.extra_layout = dict(extra_layout or {})
        self.first_id = base.end_id if base is not None else 1
        self._str_start = base.str_end if base is not None else 0
        self._strs = bytearray(b"" if base is not None else b"\0")
        self._str_off: Dict[str, int] = {} if base is not None else {"": 0}
        self._base_strs: Optional[Dict[str, int]] = None
        self._recs: List[bytes] = []

    # -- strings and records -----------------------------------------------

    def _base_string_offsets(self) -> Dict[str, int]:
        if self._base_strs is None:
            m: Dict[str, int] = {}
            chain = []
            b = self.base
            while b is not None:
                chain.append(b)
                b = b.base
            for b in chain:  # nearest first; setdefault keeps the first seen
                s = bytes(b._strs)
                pos = 0
                n = len(s)
                while pos < n:
                    end = s.index(0, pos)
                    m.setdefault(s[pos:end].decode("utf-8", "surrogateescape"), b.str_start + pos)
                    pos = end + 1
            self._base_strs = m
        return self._base_strs

    def add_string(self, s: str) -> int:
        """Chain-wide offset of ``s`` (deduplicated; base strings reused in split mode)."""
        off = self._str_off.get(s)
        if off is not None:
            return off
        if self.base is not None:
            off = self._base_string_offsets().get(s)
            if off is not None:
                self._str_off[s] = off
                return off
        raw = s.encode("utf-8", "surrogateescape")
        if b"\0" in raw:
            raise ValueError("BTF strings cannot contain NUL")
        off = self._str_start + len(self._strs)
        self._strs += raw + b"\0"
        self._str_off[s] = off
        return off

    def _name(self, name: Optional[str]) -> int:
        return self.add_string(name) if name else 0

    def next_id(self) -> int:
        """The id the next added type will get."""
        return self.first_id + len(self._recs)

    def __len__(self) -> int:
        return len(self._recs)

    def _add(self, kind: int, name: Optional[str], vlen: int, kflag: bool, size_or_type: int,
             extra: bytes = b"") -> int:
        if not 0 <= vlen <= MAX_VLEN:
            raise ValueError(f"vlen {vlen} out of range")
        if not 0 <= size_or_type <= _U32:
            raise ValueError(f"size/type {size_or_type} out of range")
        info = (int(bool(kflag)) << 31) | ((kind & MAX_KIND) << 24) | vlen
        self._recs.append(struct.pack(self._fmt + "3I", self._name(name), info, size_or_type) + extra)
        return self.next_id() - 1

    def _u32s(self, *vals: int) -> bytes:
        for v in vals:
            if not -(1 << 31) <= v <= _U32:
                raise ValueError(f"value {v} does not fit in 32 bits")
        return struct.pack(self._fmt + f"{len(vals)}I", *[v & _U32 for v in vals])

    def add_raw(self, kind: int, name: str, vlen: int, kind_flag: bool, size_or_type: int,
                extra: bytes = b"") -> int:
        """A raw record (for kinds this builder does not model, e.g. with ``extra_layout``)."""
        return self._add(kind, name, vlen, kind_flag, size_or_type, extra)

    # -- kinds -------------------------------------------------------------

    def add_int(self, name: str, size: int, encoding: int = 0, *, bits: Optional[int] = None,
                offset: int = 0) -> int:
        if bits is None:
            bits = 8 * size
        return self._add(BtfKind.INT, name, 0, False, size,
                         self._u32s(((encoding & 0xF) << 24) | ((offset & 0xFF) << 16) | (bits & 0xFF)))

    def add_ptr(self, type: int) -> int:
        return self._add(BtfKind.PTR, None, 0, False, type)

    def add_array(self, elem: int, index: int, nelems: int) -> int:
        return self._add(BtfKind.ARRAY, None, 0, False, 0, self._u32s(elem, index, nelems))

    def _composite(self, kind: int, name: Optional[str], size: int,
                   members: Sequence[Tuple[Optional[str], int, int, int]],
                   kind_flag: Optional[bool]) -> int:
        # (name, type, bit_offset) is accepted as (name, type, bit_offset, 0).
        members = [tuple(m) + (0,) if len(m) == 3 else tuple(m) for m in members]
        if kind_flag is None:
            kind_flag = any(m[3] for m in members)
        extra = []
        for m in members:
            mname, mtype, bit_off, bsz = m
            if kind_flag:
                if not 0 <= bit_off <= 0xFFFFFF or not 0 <= bsz <= 0xFF:
                    raise ValueError(f"member {mname!r}: bit offset/size too large for kind_flag form")
                moff = (bsz << 24) | bit_off
            else:
                if bsz:
                    raise ValueError("bitfield_size needs the kind_flag form")
                moff = bit_off
            extra.append(self._u32s(self._name(mname), mtype, moff))
        return self._add(kind, name, len(members), kind_flag, size, b"".join(extra))

    def add_struct(self, name: Optional[str], size: int,
                   members: Sequence[Tuple[Optional[str], int, int, int]] = (),
                   *, kind_flag: Optional[bool] = None) -> int:
        """members: (name, type, bit_offset, bitfield_size); kind_flag set if any bitfield_size."""
        return self._composite(BtfKind.STRUCT, name, size, members, kind_flag)

    def add_union(self, name: Optional[str], size: int,
                  members: Sequence[Tuple[Optional[str], int, int, int]] = (),
                  *, kind_flag: Optional[bool] = None) -> int:
        return self._composite(BtfKind.UNION, name, size, members, kind_flag)

    def add_enum(self, name: Optional[str], size: int, values: Sequence[Tuple[str, int]] = (),
                 signed: bool = False) -> int:
        extra = b"".join(self._u32s(self._name(n), v) for n, v in values)
        return self._add(BtfKind.ENUM, name, len(values), signed, size, extra)

    def add_enum64(self, name: Optional[str], size: int, values: Sequence[Tuple[str, int]] = (),
                   signed: bool = False) -> int:
        for n, v in values:
            if not -(1 << 63) <= v < (1 << 64):
                raise ValueError(f"enumerator {n!r} value {v} does not fit in 64 bits")
        extra = b"".join(self._u32s(self._name(n), v & _U32, (v >> 32) & _U32) for n, v in values)
        return self._add(BtfKind.ENUM64, name, len(values), signed, size, extra)

    def add_fwd(self, name: str, union: bool = False) -> int:
        return self._add(BtfKind.FWD, name, 0, union, 0)

    def add_typedef(self, name: str, type: int) -> int:
        return self._add(BtfKind.TYPEDEF, name, 0, False, type)

    def add_volatile(self, type: int) -> int:
        return self._add(BtfKind.VOLATILE, None, 0, False, type)

    def add_const(self, type: int) -> int:
        return self._add(BtfKind.CONST, None, 0, False, type)

    def add_restrict(self, type: int) -> int:
        return self._add(BtfKind.RESTRICT, None, 0, False, type)

    def add_type_tag(self, name: str, type: int) -> int:
        return self._add(BtfKind.TYPE_TAG, name, 0, False, type)

    def add_func(self, name: str, proto: int, linkage: int = BTF_FUNC_STATIC) -> int:
        return self._add(BtfKind.FUNC, name, linkage, False, proto)

    def add_func_proto(self, ret: int, params: Sequence[Tuple[Optional[str], int]] = (),
                       variadic: bool = False) -> int:
        ps = list(params) + ([(None, 0)] if variadic else [])
        extra = b"".join(self._u32s(self._name(n), t) for n, t in ps)
        return self._add(BtfKind.FUNC_PROTO, None, len(ps), False, ret, extra)

    def add_var(self, name: str, type: int, linkage: int = BTF_VAR_GLOBAL_ALLOCATED) -> int:
        return self._add(BtfKind.VAR, name, 0, False, type, self._u32s(linkage))

    def add_datasec(self, name: str, size: int,
                    secinfos: Sequence[Tuple[int, int, int]] = ()) -> int:
        extra = b"".join(self._u32s(t, o, s) for t, o, s in secinfos)
        return self._add(BtfKind.DATASEC, name, len(secinfos), False, size, extra)

    def add_float(self, name: str, size: int) -> int:
        return self._add(BtfKind.FLOAT, name, 0, False, size)

    def add_decl_tag(self, name: str, type: int, component_idx: int = -1) -> int:
        return self._add(BtfKind.DECL_TAG, name, 0, False, type, self._u32s(component_idx))

    def add_type(self, t: BtfType, remap: Optional[Callable[[int], int]] = None) -> int:
        """Copy a decoded record; type references go through ``remap`` (identity by default)."""
        r: Callable[[int], int] = remap if remap is not None else (lambda i: i)
        k = t.kind
        K = BtfKind
        if k == K.INT:
            # Re-encode exactly (kind_flag/vlen are 0 in valid INTs).
            return self._add(K.INT, t.name, t.vlen, t.kind_flag, t.size, self._u32s(
                ((t.int_encoding & 0xF) << 24) | ((t.int_offset & 0xFF) << 16) | (t.int_bits & 0xFF)))
        if k in (K.PTR, K.VOLATILE, K.CONST, K.RESTRICT, K.TYPEDEF, K.TYPE_TAG):
            return self._add(k, t.name, t.vlen, t.kind_flag, r(t.type))
        if k == K.ARRAY:
            return self._add(K.ARRAY, t.name, t.vlen, t.kind_flag, 0,
                             self._u32s(r(t.array_type), r(t.array_index_type), t.array_nelems))
        if k in (K.STRUCT, K.UNION):
            return self._composite(k, t.name, t.size,
                                   [(m.name, r(m.type), m.bit_offset, m.bitfield_size) for m in t.members],
                                   t.kind_flag)
        if k == K.ENUM:
            return self.add_enum(t.name, t.size, [(e.name, e.value) for e in t.enumerators], t.kind_flag)
        if k == K.ENUM64:
            return self.add_enum64(t.name, t.size, [(e.name, e.value) for e in t.enumerators],
                                   t.kind_flag)
        if k == K.FWD:
            return self._add(K.FWD, t.name, t.vlen, t.kind_flag, 0)
        if k == K.FUNC:
            return self._add(K.FUNC, t.name, t.linkage, t.kind_flag, r(t.type))
        if k == K.FUNC_PROTO:
            return self.add_func_proto(r(t.type), [(p.name, r(p.type)) for p in t.params], t.variadic)
        if k == K.VAR:
            return self._add(K.VAR, t.name, t.vlen, t.kind_flag, r(t.type), self._u32s(t.linkage))
        if k == K.DATASEC:
            return self.add_datasec(t.name, t.size, [(r(s.type), s.offset, s.size) for s in t.secinfos])
        if k == K.FLOAT:
            return self._add(K.FLOAT, t.name, t.vlen, t.kind_flag, t.size)
        if k == K.DECL_TAG:
            return self._add(K.DECL_TAG, t.name, t.vlen, t.kind_flag, r(t.type),
                             self._u32s(t.component_idx))
        raise ValueError(f"cannot copy a {k.name} record")

    # -- output ------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The BTF blob (split blobs hold only the new types and strings)."""
        types = b"".join(self._recs)
        strs = bytes(self._strs)
        hdr_len = HDR_LEN_LAYOUT if self.layout else HDR_LEN_V1
        layout = b""
        if self.layout:
            table = {k: (KIND_INFO_SIZE[k], KIND_ELEM_SIZE[k]) for k in KIND_INFO_SIZE}
            table[0] = (0, 0)
            table.update(self.extra_layout)
            nk = max(table) + 1
            layout = b"".join(struct.pack(self._fmt + "BBH", *table.get(k, (0, 0)), 0)
                              for k in range(nk))
        # Sections in the order libbpf expects: types | layout | strings.
        hdr = BtfHeader(self.byteorder, BTF_VERSION, 0, hdr_len, 0, len(types),
                        len(types) + len(layout), len(strs),
                        len(types) if layout else 0, len(layout))
        return hdr.pack() + types + layout + strs
