"""The BTF reader: base and split BTF, both byte orders, strict validation.

Opening a :class:`Btf` walks the header and the type section once (every
record's offset is recorded, every kind and vlen checked); records are decoded
only when asked for, and the name index is built on first use.  Every problem
with the input raises :class:`BtfError` naming the type id or byte offset.
"""

from __future__ import annotations

import os
import sys
from array import array
from bisect import bisect_right
from collections import Counter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from .format import (
    KIND_ELEM_SIZE, KIND_INFO_SIZE, MAX_KIND, MAX_SIZE, MAX_TYPE_ID,
    BtfError, BtfHeader, BtfKind, layout_table,
)
from .types import BtfEnumerator, BtfMember, BtfParam, BtfType, BtfVarSecinfo

__all__ = ["Btf", "accelerated", "load_accel"]

assert array("I").itemsize == 4

_MODIFIERS = frozenset((BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
                        BtfKind.TYPE_TAG))
_MODIFIER_NUMS = frozenset(int(k) for k in _MODIFIERS)
_SIZED = frozenset((BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64,
                    BtfKind.DATASEC, BtfKind.FLOAT))
# Kinds whose third word is a type id.
_REF_KINDS = frozenset((BtfKind.PTR, BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST,
                        BtfKind.RESTRICT, BtfKind.TYPE_TAG, BtfKind.FUNC, BtfKind.VAR,
                        BtfKind.DECL_TAG, BtfKind.FUNC_PROTO))
_KINDS = {int(k): k for k in BtfKind}
_SIMPLE_REF = frozenset((2, 8, 9, 10, 11, 18))
_TYPE_DEFAULTS = BtfType._defaults
_new = object.__new__  # frozen records are filled through __dict__ (3x faster)
# Steps along a typedef/modifier/array chain before cycle detection starts.
_SHORT_CHAIN = 32
# Calls of Btf._decl one format_c may make: prototypes whose parameters refer
# back to them would otherwise grow the text exponentially within the depth cap.
_DECL_BUDGET = 20000


def load_accel():
    """The compiled accelerator module, or None (absent, or DRGN_BTFVARS_PURE_PYTHON=1)."""
    if os.environ.get("DRGN_BTFVARS_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import accel
    except ImportError:
        return None
    return accel


_ACCEL = load_accel()


def accelerated() -> bool:
    """Whether new Btf objects use the C accelerator."""
    return _ACCEL is not None


class _ObjectName(str):
    """A Btf's name as a str, callable as ``name(type_id)`` for a type's name."""

    __slots__ = ("_btf",)

    def __new__(cls, value: str, btf: "Btf") -> "_ObjectName":
        self = super().__new__(cls, value)
        self._btf = btf
        return self

    def __call__(self, type_id: int) -> str:
        return self._btf.type_name(type_id)


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


class Btf:
    """A BTF object: a base BTF, or split BTF over ``base`` (to any depth).

    Type ids and string offsets continue after the base's: ``first_id`` is
    ``base.end_id`` and this object's strings start at the base chain's total
    string length.
    """

    def __init__(self, data: bytes, base: "Btf | None" = None, *, name: str = "",
                 accel: Optional[bool] = None) -> None:
        if base is not None and not isinstance(base, Btf):
            raise TypeError("base must be a Btf")
        data = bytes(data)
        self.data = data
        self.base = base
        self.label = name
        what = name or "BTF"
        self._what = what
        hdr = BtfHeader.parse(data, what)
        self.header = hdr
        self.byteorder = hdr.byteorder
        self.first_id = base.end_id if base is not None else 1
        self.str_start = base.str_end if base is not None else 0
        # Strings (no copy: offsets into ``data``).
        s0 = hdr.hdr_len + hdr.str_off
        self._sbase = s0
        slen = hdr.str_len
        if base is None and (not slen or data[s0] != 0):
            raise BtfError(f"{what}: a base BTF's string section must start with an empty "
                           f"string at offset {s0}")
        if slen and data[s0 + slen - 1] != 0:
            raise BtfError(f"{what}: string section not NUL-terminated at offset {s0 + slen - 1}")
        self.str_end = self.str_start + hdr.str_len
        if self.str_end > 0xFFFFFFFF:
            raise BtfError(f"{what}: string offsets past 2^32 at offset {s0}")
        # Layout section: sizes for kinds we do not know; known kinds must agree.
        fix = [-1] * (MAX_KIND + 1)
        ele = [0] * (MAX_KIND + 1)
        for k, isz in KIND_INFO_SIZE.items():
            fix[k] = 3 + isz // 4
            ele[k] = KIND_ELEM_SIZE[k] // 4
        self._layout = layout_table(data, hdr, what)
        # Split BTF without a layout section of its own uses its base's (as libbpf does).
        lay = self._layout
        b = base
        while lay is None and b is not None:
            lay, b = b._layout, b.base
        if lay:
            for k, (isz, esz) in lay.items():
                if k == 0:
                    continue
                if k in KIND_INFO_SIZE:
                    if (isz, esz) != (KIND_INFO_SIZE[k], KIND_ELEM_SIZE[k]):
                        raise BtfError(f"{what}: layout entry for kind {k} ({isz}, {esz}) disagrees "
                                       f"with the format ({KIND_INFO_SIZE[k]}, {KIND_ELEM_SIZE[k]}) "
                                       f"at offset {hdr.hdr_len + hdr.layout_off + 4 * k}")
                else:
                    fix[k] = 3 + isz // 4
                    ele[k] = esz // 4
        # Types: native-order words, then the walk.
        t0 = hdr.hdr_len + hdr.type_off
        if hdr.byteorder == sys.byteorder:
            words = memoryview(data)[t0:t0 + hdr.type_len].cast("I")  # no copy
        else:
            words = array("I")
            words.frombytes(data[t0:t0 + hdr.type_len])
            words.byteswap()
        self._words = words
        self._type_base = t0
        use_accel = _ACCEL is not None if accel is None else (accel and _ACCEL is not None)
        self._accel = _ACCEL if use_accel else None
        if self._accel is not None:
            offs, err, self._offs_c = self._accel.walk(words, fix, ele)
        else:
            offs, err = _walk_py(words, fix, ele)
            self._offs_c = None
        if err is not None:
            self._walk_error(*err)
        self._offs = offs
        n = len(offs)
        self.end_id = self.first_id + n
        if self.end_id - 1 > MAX_TYPE_ID:
            raise BtfError(f"{what}: too many types (last id {self.end_id - 1})")
        # Name offsets must be in range: checked for every record now.
        if n:
            if self._accel is not None:
                mx = self._accel.max_name_off(words, offs)
            else:
                mx = max(map(words.__getitem__, offs))
            if mx >= self.str_end:
                for i, p in enumerate(offs):
                    if words[p] >= self.str_end:
                        raise BtfError(f"{what}: type id {self.first_id + i}: name offset {words[p]} "
                                       f"out of range (string section ends at {self.str_end}) "
                                       f"at offset {t0 + 4 * p}")
        self._cache: Dict[int, BtfType] = {}
        self._scache: Dict[int, str] = {}
        self._index: Optional[Dict[str, List[int]]] = None
        self._cindex = None
        self._kinds: Optional[bytes] = None
        # name -> [(type id, index)] (pure Python), or the accelerator's EnumIndex.
        self._enum_index: Any = None
        self._str_lookup: Optional[Dict[str, int]] = None
        self._ptr_size: Optional[int] = None
        # Ids known to reach no cycle: [through pointers too, by value only].
        self._clean: Tuple[set, set] = (set(), set())
        # The accelerator's cycle search (accel.Cycles): [pointers too, by value].
        self._cycles: List[Any] = [None, None]

    # -- open-time helpers -------------------------------------------------

    def _walk_error(self, code: int, index: int, pos: int, kind: int) -> None:
        tid = self.first_id + index
        off = self._type_base + 4 * pos
        if code == 1:
            raise BtfError(f"{self._what}: type id {tid}: unknown kind {kind} (no layout section "
                           f"entry for it) at offset {off}")
        if code == 2:
            raise BtfError(f"{self._what}: type id {tid}: record runs past the end of the type "
                           f"section at offset {off}")
        raise BtfError(f"{self._what}: type id {tid}: kind 0 is not valid in the type section "
                       f"at offset {off}")

    @property
    def _strs(self) -> memoryview:
        """This object's string section (a view of ``data``)."""
        return memoryview(self.data)[self._sbase:self._sbase + self.header.str_len]

    # -- basic queries -----------------------------------------------------

    def __len__(self) -> int:
        return len(self._offs)

    def __repr__(self) -> str:
        return (f"Btf({self.label!r}, ids {self.first_id}..{self.end_id - 1}, {self.byteorder}"
                f"{', split' if self.base is not None else ''})")

    def ids(self) -> range:
        """This object's type ids."""
        return range(self.first_id, self.end_id)

    def _owner(self, type_id: int) -> "Btf":
        b: Btf = self
        if type_id >= b.end_id or type_id < 0 or not isinstance(type_id, int):
            raise BtfError(f"{self._what}: type id {type_id} out of range (0..{self.end_id - 1})")
        while type_id < b.first_id:
            if b.base is None:
                return b  # only id 0
            b = b.base
        return b

    def raw_kind(self, type_id: int) -> int:
        """The kind number as stored (may be a kind unknown to this reader); 0 for void."""
        b = self._owner(type_id)
        if type_id == 0:
            return 0
        return (b._words[b._offs[type_id - b.first_id] + 1] >> 24) & 0x7F

    def kind(self, type_id: int) -> BtfKind:
        """The kind of any id in the chain (0 is VOID; kinds known only from the layout
        section are ``BtfKind.UNKNOWN``)."""
        return _KINDS.get(self.raw_kind(type_id), BtfKind.UNKNOWN)

    @property
    def name(self) -> "_ObjectName":
        """The object's name (a ``str``, e.g. "vmlinux"), which is ALSO callable:
        ``btf.name(type_id)`` is :meth:`type_name` (the API asks for both)."""
        return _ObjectName(self.label, self)

    def type_name(self, type_id: int) -> str:
        """The name of any id in the chain ("" for anonymous types and void)."""
        b = self._owner(type_id)
        if type_id == 0:
            return ""
        no = b._words[b._offs[type_id - b.first_id]]
        return b.string(no) if no else ""

    def string(self, offset: int) -> str:
        """The NUL-terminated string at a chain-wide string offset."""
        b: Btf = self
        if not isinstance(offset, int) or offset < 0 or offset >= self.str_end:
            raise BtfError(f"{self._what}: string offset {offset} out of range "
                           f"(0..{self.str_end - 1})")
        while offset < b.str_start:
            b = b.base  # type: ignore[assignment]
        d = b.data
        lo = b._sbase + offset - b.str_start
        return d[lo:d.index(0, lo)].decode("utf-8", "surrogateescape")

    def kind_counts(self) -> Dict[BtfKind, int]:
        """Number of types of each kind in THIS object."""
        c = Counter(self._kind_bytes())
        return {_KINDS.get(k, BtfKind.UNKNOWN): v for k, v in sorted(c.items())}

    def _kind_bytes(self) -> bytes:
        if self._kinds is None:
            if self._accel is not None:
                self._kinds = self._accel.kinds(self._words, self._offs)
            else:
                w = self._words
                self._kinds = bytes((w[p + 1] >> 24) & 0x7F for p in self._offs)
        return self._kinds

    def vars(self) -> Iterator[int]:
        """Ids of the VARs in THIS object, ascending."""
        return self._ids_of_kind(BtfKind.VAR)

    def datasecs(self) -> Iterator[int]:
        """Ids of the DATASECs in THIS object, ascending."""
        return self._ids_of_kind(BtfKind.DATASEC)

    def find_enumerator(self, name: str) -> List[Tuple[int, int]]:
        """``(type id, index)`` of every enumerator named ``name`` in THIS
        object's ENUM/ENUM64 types, ascending, from an index built at the
        first lookup (in C with the accelerator, ~0.5 ms for vmlinux; in
        Python, ~50 ms)."""
        if not name:
            return []  # an enumerator must have a name
        index = self._enum_index
        if index is None:
            if self._accel is not None:
                try:
                    index = self._enum_index = self._accel.EnumIndex(self)
                except self._accel.NoString:
                    pass  # corrupt: the Python index says where
            if index is None:
                index = self._enum_index = self._build_enum_index()
        if isinstance(index, dict):
            return index.get(name, [])
        return index.find(name)

    def _vlen_slots(self, value: int, kinds: Dict[int, int]) -> Iterator[Tuple[int, int, int]]:
        """``(type id, entry index, word within the entry)`` of every place in
        THIS object where a record of one of ``kinds`` (kind -> words per
        entry) stores ``value`` in its entries, ascending: a byte search of
        the type section instead of a walk over every record."""
        w, offs, first = self._words, self._offs, self.first_id
        for widx in self._find_words(value):
            r = bisect_right(offs, widx) - 1
            p = offs[r]
            step = kinds.get((w[p + 1] >> 24) & 0x7F)
            j = widx - p - 3
            if step is not None and 0 <= j < step * (w[p + 1] & 0xFFFFFF):
                yield first + r, j // step, j % step

    def _find_words(self, value: int) -> Iterator[int]:
        """Indexes of the type-section words equal to ``value``, ascending."""
        w = self._words
        if self._accel is not None:
            yield from self._accel.find_words(w, value)
            return
        d, base = self.data, self._type_base
        if w.__class__ is not memoryview or not isinstance(d, bytes):
            d, base = w.tobytes(), 0  # a byte-swapped copy
        end = base + 4 * len(w)
        pat = value.to_bytes(4, sys.byteorder)
        i = d.find(pat, base, end)
        while i >= 0:
            if not (i - base) & 3:
                yield (i - base) >> 2
            i = d.find(pat, i + 1, end)

    def _build_enum_index(self) -> Dict[str, List[Tuple[int, int]]]:
        w, first = self._words, self.first_id
        by_off: Dict[int, List[Tuple[int, int]]] = {}
        for kind, step in ((BtfKind.ENUM, 2), (BtfKind.ENUM64, 3)):
            for tid in self._ids_of_kind(kind):
                p = self._offs[tid - first]
                vlen = w[p + 1] & 0xFFFFFF
                for j, o in enumerate(w[p + 3:p + 3 + step * vlen:step].tolist()):
                    by_off.setdefault(o, []).append((tid, j))
        index: Dict[str, List[Tuple[int, int]]] = {}
        for o, ents in by_off.items():
            index.setdefault(self.string(o), []).extend(ents)
        for ents in index.values():
            ents.sort()
        return index

    def var_location(self, var_id: int) -> Optional[Tuple[int, int, int]]:
        """``(DATASEC id, offset, size)`` of one VAR of THIS object (the first
        DATASEC entry for it), by scanning the raw entries (no map built)."""
        w = self._words
        for sid, entry, field in self._vlen_slots(var_id, {BtfKind.DATASEC: 3}):
            if field == 0:  # the entry's VAR id
                p = self._offs[sid - self.first_id] + 3 + 3 * entry
                return sid, w[p + 1], w[p + 2]
        return None

    def var_type(self, var_id: int) -> Tuple[int, int]:
        """``(type id, linkage)`` of a VAR of the chain, read from its raw
        record without decoding it (the per-lookup path of a variable)."""
        b = self._owner(var_id)
        if var_id == 0 or (b._words[b._offs[var_id - b.first_id] + 1] >> 24) & 0x7F != BtfKind.VAR:
            raise BtfError(f"{self._what}: type id {var_id} is not a VAR")
        p = b._offs[var_id - b.first_id]
        tid = b._words[p + 2]
        if tid >= b.end_id:
            raise b._bad_ref(tid, "type", var_id)
        return tid, b._words[p + 3]

    def var_records(self) -> List[Tuple[int, str, int, int]]:
        """``(VAR id, name, type id, linkage)`` of every VAR of THIS object,
        ascending, read from the raw records in one pass (the bulk form of
        :meth:`var_type`)."""
        w, offs, first, end = self._words, self._offs, self.first_id, self.end_id
        own = self._own_strings()
        sstr = self._str
        out = []
        for vid in self._ids_of_kind(BtfKind.VAR):
            p = offs[vid - first]
            tid = w[p + 2]
            if tid >= end:
                raise self._bad_ref(tid, "type", vid)
            no = w[p]
            name = own.get(no)
            out.append((vid, sstr(no) if name is None else name, tid, w[p + 3]))
        return out

    def _own_strings(self) -> Dict[int, str]:
        """Chain-wide offset -> string for every string that starts right
        after a NUL in THIS object's string section, split in one pass (an
        offset into the middle of a string is not in it)."""
        raw = bytes(self.data[self._sbase:self._sbase + self.header.str_len])
        out: Dict[int, str] = {}
        off = self.str_start
        for part in raw.split(b"\0")[:-1]:  # the section ends with a NUL (checked at open)
            out[off] = part.decode("utf-8", "surrogateescape")
            off += len(part) + 1
        return out

    def var_locations(self) -> Dict[int, Tuple[int, int, int]]:
        """VAR id → ``(DATASEC id, offset, size)`` for THIS object's DATASECs
        (the first entry wins for a VAR listed twice), built from raw records."""
        w, first = self._words, self.first_id
        out: Dict[int, Tuple[int, int, int]] = {}
        for sid in self._ids_of_kind(BtfKind.DATASEC):
            p = self._offs[sid - first]
            vlen = w[p + 1] & 0xFFFFFF
            ents = w[p + 3:p + 3 + 3 * vlen]
            types, offsets, sizes = ents[0::3].tolist(), ents[1::3].tolist(), ents[2::3].tolist()
            for t, o, z in zip(types, offsets, sizes):
                if t not in out:
                    out[t] = (sid, o, z)
        return out

    def var_table(self, bases: "List[Optional[int]]") -> Any:
        """Name -> ``(address, type id)`` of THIS object's VARs, an object
        with a ``get(name)`` method (a dict, or the accelerator's C table).

        The VAR a name means is the first global definition, else the first
        static (by type id); its address is the base address of its DATASEC
        (``bases``, by DATASEC index in record order) plus its offset there.
        A name whose VAR has no DATASEC entry, or whose DATASEC's base is
        None or not given, is not in the table, nor is the empty name.
        """
        if self._accel is not None:
            return self._accel.VarTable(self, bases)
        locs = self.var_locations()
        index_of = {sid: i for i, sid in enumerate(self.datasecs())}
        chosen: Dict[str, Tuple[int, int, int]] = {}
        for vid, name, tid, linkage in self.var_records():
            if not name:
                continue  # a VAR has a name: corrupt BTF
            old = chosen.get(name)
            if old is None or (old[2] == 0 and linkage != 0):
                chosen[name] = (vid, tid, linkage)
        table: Dict[str, Tuple[int, int]] = {}
        for name, (vid, tid, _) in chosen.items():
            loc = locs.get(vid)
            if loc is None:
                continue
            index = index_of[loc[0]]
            base = bases[index] if index < len(bases) else None
            if base is not None:
                table[name] = (base + loc[1], tid)
        return table

    def marks_signed_enums(self) -> bool:
        """Whether the encoder of this BTF recorded which enums are signed
        (kind_flag, with ENUM64: Linux 6.0, commit 6089fb325cf7, pahole
        1.24). Before, a value with its sign bit set may be negative or not:
        the BTF cannot say. Evidence is a signed enum or an ENUM64 in this
        object; a split object without either takes its base's answer (its
        encoder is the base's)."""
        known = self.__dict__.get("_marks_signed")
        if known is None:
            w, offs, first = self._words, self._offs, self.first_id
            known = any(w[offs[i - first] + 1] >> 31 for i in self._ids_of_kind(BtfKind.ENUM)) \
                or next(self._ids_of_kind(BtfKind.ENUM64), None) is not None \
                or (self.base is not None and self.base.marks_signed_enums())
            self._marks_signed = known
        return known

    def ids_of_kind(self, kind: int) -> Iterator[int]:
        """Ids of the types of one kind in THIS object, ascending."""
        return self._ids_of_kind(kind)

    def _ids_of_kind(self, kind: int) -> Iterator[int]:
        ks = self._kind_bytes()
        first = self.first_id
        i = ks.find(kind)
        while i >= 0:
            yield first + i
            i = ks.find(kind, i + 1)

    # -- names -------------------------------------------------------------

    def _build_index(self) -> Dict[str, List[int]]:
        by_off: Dict[int, List[int]] = {}
        w = self._words
        tid = self.first_id
        for p in self._offs:
            no = w[p]
            if no:
                lst = by_off.get(no)
                if lst is None:
                    by_off[no] = [tid]
                else:
                    lst.append(tid)
            tid += 1
        index: Dict[str, List[int]] = {}
        string = self.string
        for no, lst in by_off.items():
            s = string(no)
            old = index.get(s)
            if old is None:
                index[s] = lst
            else:  # the same string stored twice
                old.extend(lst)
                old.sort()
        return index

    def find(self, name: str, kind: "BtfKind | Iterable[BtfKind] | None" = None) -> List[int]:
        """Ids named ``name`` in THIS object only, ascending; ``kind`` keeps one kind, or a
        family given as several (e.g. ``(BtfKind.ENUM, BtfKind.ENUM64)``)."""
        if self._accel is not None:
            if self._cindex is None:
                self._cindex = self._accel.NameIndex(self)
            ids = self._cindex.find(name)
        else:
            if self._index is None:
                self._index = self._build_index()
            ids = self._index.get(name)
        if not ids:
            return []
        if kind is None:
            return list(ids)
        if isinstance(kind, int):
            # The ids come from this object's own index: no range checks needed.
            w, offs, first = self._words, self._offs, self.first_id
            return [i for i in ids if (w[offs[i - first] + 1] >> 24) & 0x7F == kind]
        kinds = {int(k) for k in kind}
        return [i for i in ids if self.raw_kind(i) in kinds]

    def find_all(self, name: str, kind: "BtfKind | Iterable[BtfKind] | None" = None) -> List[int]:
        """Ids named ``name`` in the whole chain: bases first, then this object."""
        chain = []
        b: Optional[Btf] = self
        while b is not None:
            chain.append(b)
            b = b.base
        out: List[int] = []
        for b in reversed(chain):
            out.extend(b.find(name, kind))
        return out

    def names(self) -> Dict[str, List[int]]:
        """The name index of THIS object (a copy): name -> ids, ascending."""
        if self._index is None:
            self._index = self._build_index()
        return {k: list(v) for k, v in self._index.items()}

    # -- decoding ----------------------------------------------------------

    def type(self, type_id: int) -> BtfType:
        """The decoded record of any id in the chain (0 gives a VOID record)."""
        b = self._owner(type_id)
        if type_id == 0:
            return BtfType(0, BtfKind.VOID)
        if b is not self:
            return b.type(type_id)
        t = self._cache.get(type_id)
        if t is None:
            t = self._decode(type_id)
            self._cache[type_id] = t
        return t

    def record(self, type_id: int) -> BtfType:
        """:meth:`type`, without keeping the decoded record (for one-time
        readers such as the type converter, which caches what it makes)."""
        b = self._owner(type_id)
        if type_id == 0:
            return BtfType(0, BtfKind.VOID)
        t = b._cache.get(type_id)
        return b._decode(type_id) if t is None else t

    def _str(self, off: int) -> str:
        """string() with a per-object cache (decoding hits the same names often)."""
        s = self._scache.get(off)
        if s is None:
            s = self._scache[off] = self.string(off) if off else ""
        return s

    def _bad_ref(self, tid: int, what: str, type_id: int) -> BtfError:
        return BtfError(f"{self._what}: type id {type_id}: {what} refers to type id {tid} "
                        f"out of range (0..{self.end_id - 1}) at offset "
                        f"{self._type_base + 4 * self._offs[type_id - self.first_id]}")

    def _decode(self, tid: int) -> BtfType:
        w = self._words
        p = self._offs[tid - self.first_id]
        no, info, st = w[p], w[p + 1], w[p + 2]
        kn = (info >> 24) & 0x7F
        k = _KINDS.get(kn, BtfKind.UNKNOWN)
        kflag = info >> 31 == 1
        vlen = info & 0xFFFFFF
        sstr = self._str
        name = sstr(no) if no else ""
        end = self.end_id
        d = dict(_TYPE_DEFAULTS, id=tid, kind=k, name=name, kind_flag=kflag, vlen=vlen)

        def bad(msg: str) -> BtfError:
            return BtfError(f"{self._what}: type id {tid} ({k.name}): {msg} at offset "
                            f"{self._type_base + 4 * p}")

        if kn in _SIMPLE_REF:  # PTR TYPEDEF VOLATILE CONST RESTRICT TYPE_TAG
            if st >= end:
                raise self._bad_ref(st, "type", tid)
            d["type"] = st
        elif kn == 12:  # FUNC
            if st >= end:
                raise self._bad_ref(st, "prototype", tid)
            d["type"] = st
            d["linkage"] = vlen
        elif kn == 4 or kn == 5:  # STRUCT UNION
            ms = []
            for mn, mt, bit_offset, bitfield_size in self.compound(tid)[3]:
                m = _new(BtfMember)
                m.__dict__.update(name=mn, type=mt, bit_offset=bit_offset,
                                  bitfield_size=bitfield_size)
                ms.append(m)
            d["size"] = st
            d["members"] = tuple(ms)
        elif kn == 13:  # FUNC_PROTO
            if st >= end:
                raise self._bad_ref(st, "return type", tid)
            ps = []
            q = p + 3
            variadic = False
            for i in range(vlen):
                pn, pt = w[q], w[q + 1]
                if pn == 0 and pt == 0 and i == vlen - 1:
                    variadic = True
                else:
                    if pt >= end:
                        raise self._bad_ref(pt, "parameter type", tid)
                    prm = _new(BtfParam)
                    prm.__dict__.update(name=sstr(pn), type=pt)
                    ps.append(prm)
                q += 2
            d["type"] = st
            d["params"] = tuple(ps)
            d["variadic"] = variadic
        elif kn == 1:  # INT
            x = w[p + 3]
            enc, ioff, bits = (x >> 24) & 0x0F, (x >> 16) & 0xFF, x & 0xFF
            if st not in (1, 2, 4, 8, 16):
                raise bad(f"size {st} not 1, 2, 4, 8 or 16")
            if x & 0xF000FF00 or bits == 0 or ioff + bits > 8 * st:
                raise bad(f"bad encoding word 0x{x:08x} for size {st}")
            d.update(size=st, int_encoding=enc, int_offset=ioff, int_bits=bits)
        elif kn == 3:  # ARRAY
            et, it = w[p + 3], w[p + 4]
            if et >= end:
                raise self._bad_ref(et, "element type", tid)
            if it >= end:
                raise self._bad_ref(it, "index type", tid)
            d.update(array_type=et, array_index_type=it, array_nelems=w[p + 5])
        elif kn == 6 or kn == 19:  # ENUM ENUM64
            es = []
            q = p + 3
            if kn == 6:
                for _ in range(vlen):
                    v = w[q + 1]
                    e = _new(BtfEnumerator)
                    e.__dict__.update(name=sstr(w[q]), value=_s32(v) if kflag else v)
                    es.append(e)
                    q += 2
            else:
                for _ in range(vlen):
                    v = w[q + 1] | (w[q + 2] << 32)
                    if kflag and v >> 63:
                        v -= 1 << 64
                    e = _new(BtfEnumerator)
                    e.__dict__.update(name=sstr(w[q]), value=v)
                    es.append(e)
                    q += 3
            d["size"] = st
            d["enumerators"] = tuple(es)
        elif kn == 7:  # FWD
            d["fwd_union"] = kflag
        elif kn == 14:  # VAR
            if st >= end:
                raise self._bad_ref(st, "type", tid)
            d["type"] = st
            d["linkage"] = w[p + 3]
        elif kn == 15:  # DATASEC
            ss = []
            q = p + 3
            for _ in range(vlen):
                vt = w[q]
                if vt >= end:
                    raise self._bad_ref(vt, "secinfo type", tid)
                s = _new(BtfVarSecinfo)
                s.__dict__.update(type=vt, offset=w[q + 1], size=w[q + 2])
                ss.append(s)
                q += 3
            d["size"] = st
            d["secinfos"] = tuple(ss)
        elif kn == 16:  # FLOAT
            if st not in (2, 4, 8, 12, 16):
                raise bad(f"size {st} not 2, 4, 8, 12 or 16")
            d["size"] = st
        elif kn == 17:  # DECL_TAG
            if st >= end:
                raise self._bad_ref(st, "type", tid)
            d["type"] = st
            d["component_idx"] = _s32(w[p + 3])
        # else: a kind known only from the layout section: the common fields only.
        t = _new(BtfType)
        t.__dict__.update(d)
        return t

    # -- C semantics -------------------------------------------------------

    def _refs(self, type_id: int, by_value: bool) -> Tuple[int, ...]:
        """The ids a type refers to: by value only (no pointer), or also
        through pointers but stopping at named structures and unions."""
        # Read from the raw words (no decoding: conversion runs this over
        # every type a struct reaches by value); an out-of-range id is
        # caught by _owner() when the search steps onto it.
        b = self._owner(type_id)
        if type_id == 0:
            return ()
        w = b._words
        p = b._offs[type_id - b.first_id]
        info = w[p + 1]
        k = (info >> 24) & 0x7F
        if k == 4 or k == 5:  # STRUCT UNION
            if not by_value and w[p] and b.type_name(type_id):
                return ()
            return tuple(w[p + 4:p + 4 + 3 * (info & 0xFFFFFF):3])
        if k == 3:  # ARRAY
            return (w[p + 3],)
        if k == 13:  # FUNC_PROTO: the return type, then each parameter's
            return (w[p + 2],) + tuple(w[p + 4:p + 4 + 2 * (info & 0xFFFFFF):2])
        if k in _MODIFIER_NUMS or k == 14 or k == 12 or (k == 2 and not by_value):
            return (w[p + 2],)  # VAR FUNC PTR and modifiers
        return ()

    def contains_itself(self, type_id: int) -> bool:
        """Whether a type reaches itself by value, through members, array
        elements, typedefs, qualifiers or prototype return and parameter types
        but no pointer: an infinite type, which only corrupt BTF describes."""
        return self._reaches_itself(type_id, True)

    def unnamed_cycle(self, type_id: int) -> bool:
        """Whether a type reaches itself, pointers included, without passing
        through a named structure or union: no C declaration can spell it
        (``typedef void f(f *)``), and printing it would never end."""
        return self._reaches_itself(type_id, False)

    def _reaches_itself(self, type_id: int, by_value: bool) -> bool:
        owner = self._owner(type_id)
        if type_id == 0:
            return False
        if owner._accel is not None:
            cycles = owner._cycles[by_value]
            if cycles is None:
                cycles = owner._cycles[by_value] = owner._accel.Cycles(owner, by_value)
            found = cycles.reaches_itself(type_id)
            if found is not None:
                return found
        # Iterative depth-first search; every type whose search met no cycle
        # at all is remembered as clean, so each is searched once.
        if type_id in owner._clean[by_value]:
            return False
        path = [type_id]
        on_path = {type_id}
        seen = {type_id}
        iters = [iter(self._refs(type_id, by_value))]
        other_cycle = False
        finished = []
        while iters:
            for nxt in iters[-1]:
                if nxt == type_id:
                    return True
                if nxt == 0 or nxt in seen:
                    other_cycle = other_cycle or nxt in on_path
                    continue
                if nxt in self._owner(nxt)._clean[by_value]:
                    continue
                seen.add(nxt)
                path.append(nxt)
                on_path.add(nxt)
                iters.append(iter(self._refs(nxt, by_value)))
                break
            else:
                iters.pop()
                done = path.pop()
                on_path.discard(done)
                finished.append(done)
        if not other_cycle:  # nothing reachable from here is on a cycle
            for t in finished:
                self._owner(t)._clean[by_value].add(t)
        return False

    def compound(self, type_id: int) -> Tuple[str, int, bool, List[Tuple[str, int, int, int]]]:
        """``(name, size, kind_flag, members)`` of a STRUCT or UNION of the
        chain, each member ``(name, type id, bit offset, bit-field size)`` as
        :meth:`type` decodes it, read from the raw words and not cached (the
        type converter reads each structure once)."""
        b = self._owner(type_id)
        if type_id == 0:
            raise BtfError(f"{self._what}: type id 0 is not a STRUCT or UNION")
        w = b._words
        p = b._offs[type_id - b.first_id]
        no, info, size = w[p], w[p + 1], w[p + 2]
        if (info >> 24) & 0x7F not in (4, 5):
            raise BtfError(f"{self._what}: type id {type_id} is not a STRUCT or UNION")
        vlen = info & 0xFFFFFF
        ents = w[p + 3:p + 3 + 3 * vlen].tolist()
        types = ents[1::3]
        if types and max(types) >= b.end_id:
            raise b._bad_ref(next(t for t in types if t >= b.end_id), "member type", type_id)
        sstr = b._str
        names = [sstr(n) for n in ents[0::3]]
        kflag = info >> 31 == 1
        if kflag:
            members = [(n, t, o & 0xFFFFFF, o >> 24) for n, t, o in zip(names, types, ents[2::3])]
        else:
            members = [(n, t, o, 0) for n, t, o in zip(names, types, ents[2::3])]
        return sstr(no) if no else "", size, kflag, members

    def int_bit_field(self, type_id: int) -> Optional[Tuple[int, int]]:
        """``(bit offset, bits)`` of the INT that ``type_id`` resolves to
        (through typedefs and modifiers) when it is narrower than its size or
        offset: a member's bit field in the encoding without kind_flag.
        None for anything else. Read from the raw words."""
        tid = type_id
        for _ in range(_SHORT_CHAIN):
            if tid == 0:
                return None
            b = self._owner(tid)
            w = b._words
            p = b._offs[tid - b.first_id]
            k = (w[p + 1] >> 24) & 0x7F
            if k in _MODIFIER_NUMS:
                nxt = w[p + 2]
                if nxt >= b.end_id:
                    raise b._bad_ref(nxt, "type", tid)
                tid = nxt
                continue
            if k != 1:
                return None
            t = b.record(tid)  # validates the encoding
            if t.int_offset or t.int_bits != t.size * 8:
                return t.int_offset, t.int_bits
            return None
        t = self.type(self.resolve(type_id))  # a long chain: resolve() finds cycles
        if t.kind == BtfKind.INT and (t.int_offset or t.int_bits != t.size * 8):
            return t.int_offset, t.int_bits
        return None

    def resolve(self, type_id: int) -> int:
        """Skip TYPEDEF/CONST/VOLATILE/RESTRICT/TYPE_TAG to the underlying id."""
        tid = type_id
        seen: Optional[set] = None
        for step in range(self.end_id + 1):
            if self.kind(tid) not in _MODIFIERS:
                return tid
            if step >= _SHORT_CHAIN:  # real chains are short: from here on, look for a cycle
                if seen is None:
                    seen = set()
                elif tid in seen:
                    break
                seen.add(tid)
            tid = self.type(tid).type
        raise BtfError(f"{self._what}: type id {type_id}: reference cycle through modifiers/typedefs")

    @property
    def ptr_size(self) -> int:
        """Pointer size: the size of ``long`` in the chain, else 8."""
        if self._ptr_size is None:
            self._ptr_size = 8
            for nm in ("long int", "long unsigned int", "unsigned long", "long"):
                for i in self.find_all(nm, BtfKind.INT):
                    self._ptr_size = self.type(i).size
                    return self._ptr_size
        return self._ptr_size

    def size_of(self, type_id: int) -> int:
        """Byte size under the C rules (typedefs/modifiers followed, arrays multiplied)."""
        mult = 1
        tid = type_id
        seen: Optional[set] = None
        for step in range(self.end_id + 1):
            k = self.kind(tid)
            if k in _SIZED:
                size = self.type(tid).size
                break
            if k == BtfKind.PTR:
                size = self.ptr_size
                break
            if step >= _SHORT_CHAIN:  # look for a cycle (no need to walk end_id steps)
                if seen is None:
                    seen = set()
                elif tid in seen:
                    raise BtfError(f"{self._what}: type id {type_id}: non-pointer reference cycle")
                seen.add(tid)
            if k in _MODIFIERS or k == BtfKind.VAR:
                tid = self.type(tid).type
            elif k == BtfKind.ARRAY:
                t = self.type(tid)
                # Saturate: a chain of huge arrays must not build a huge integer
                # (a 0-element array still makes the whole size 0).
                mult = min(mult * t.array_nelems, MAX_SIZE + 1)
                tid = t.array_type
            else:
                raise BtfError(f"{self._what}: type id {type_id}: size of {k.name} (type id {tid}) "
                               f"is undefined")
        else:
            raise BtfError(f"{self._what}: type id {type_id}: non-pointer reference cycle")
        total = mult * size
        if total > MAX_SIZE:
            shown = f"{total}" if mult <= MAX_SIZE else "above 2^32"
            raise BtfError(f"{self._what}: type id {type_id}: size {shown} exceeds 2^32-1")
        return total

    # -- text dump ---------------------------------------------------------

    def dump_raw(self, type_id: int) -> str:
        """One type in bpftool's ``btf dump`` raw text form (lines joined by newlines).

        The tests compare this with Debian's bpftool line for line.
        """
        t = self.type(type_id)
        K = BtfKind

        def nm(s: str) -> str:
            return s if s else "(anon)"

        head = f"[{t.id}] {t.kind.name} '{nm(t.name)}'"
        lines: List[str] = []
        k = t.kind
        if k == K.INT:
            enc = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(t.int_encoding, "UNKN")
            head += f" size={t.size} bits_offset={t.int_offset} nr_bits={t.int_bits} encoding={enc}"
        elif k in (K.PTR, K.VOLATILE, K.CONST, K.RESTRICT, K.TYPEDEF, K.TYPE_TAG):
            head += f" type_id={t.type}"
        elif k == K.ARRAY:
            head += (f" type_id={t.array_type} index_type_id={t.array_index_type}"
                     f" nr_elems={t.array_nelems}")
        elif k in (K.STRUCT, K.UNION):
            head += f" size={t.size} vlen={t.vlen}"
            for m in t.members:
                line = f"\t'{nm(m.name)}' type_id={m.type} bits_offset={m.bit_offset}"
                if m.bitfield_size:
                    line += f" bitfield_size={m.bitfield_size}"
                lines.append(line)
        elif k in (K.ENUM, K.ENUM64):
            head += (f" encoding={'SIGNED' if t.kind_flag else 'UNSIGNED'} size={t.size}"
                     f" vlen={t.vlen}")
            sfx = ("LL" if t.kind_flag else "ULL") if k == K.ENUM64 else ""
            lines += [f"\t'{nm(e.name)}' val={e.value}{sfx}" for e in t.enumerators]
        elif k == K.FWD:
            head += f" fwd_kind={'union' if t.fwd_union else 'struct'}"
        elif k == K.FUNC:
            link = {0: "static", 1: "global", 2: "extern"}.get(t.linkage, "(unknown)")
            head += f" type_id={t.type} linkage={link}"
        elif k == K.FUNC_PROTO:
            head += f" ret_type_id={t.type} vlen={t.vlen}"
            lines += [f"\t'{nm(p.name)}' type_id={p.type}" for p in t.params]
            if t.variadic:
                lines.append("\t'(anon)' type_id=0")
        elif k == K.VAR:
            link = {0: "static", 1: "global", 2: "extern"}.get(t.linkage, "(unknown)")
            head += f" type_id={t.type}, linkage={link}"
        elif k == K.DATASEC:
            head += f" size={t.size} vlen={t.vlen}"
            for s in t.secinfos:
                line = f"\ttype_id={s.type} offset={s.offset} size={s.size}"
                line += f" ({self.kind(s.type).name} '{nm(self.name(s.type))}')"
                lines.append(line)
        elif k == K.FLOAT:
            head += f" size={t.size}"
        elif k == K.DECL_TAG:
            head += f" type_id={t.type} component_idx={t.component_idx}"
        return "\n".join([head] + lines)

    def _member_size(self, type_id: int) -> int:
        """size_of for a member, where a FWD-free incomplete type has no size: 0."""
        try:
            return self.size_of(type_id)
        except BtfError:
            if self.kind(self.resolve(type_id)) in (BtfKind.FWD, BtfKind.VOID):
                return 0
            raise

    def format_c(self, type_id: int, name: str = "") -> str:
        """A C declaration of ``type_id`` (of ``name`` if given), e.g. ``struct list_head *``,
        ``int (*)(void *, size_t)``, ``char * const p``; FUNC gives its prototype with the
        function's name. Tags (TYPE_TAG, DECL_TAG) are left out."""
        k = self.kind(type_id)
        budget = [_DECL_BUDGET]
        if k == BtfKind.FUNC:
            return self._decl(self.type(type_id).type, self.name(type_id), 0, budget)
        if k == BtfKind.VAR:
            return self._decl(self.type(type_id).type, name or self.name(type_id), 0, budget)
        return self._decl(type_id, name, 0, budget)

    def _skip_tags(self, tid: int) -> int:
        """The first id after a run of TYPE_TAGs (a cycle of them is an error)."""
        start = tid
        for _ in range(_SHORT_CHAIN):
            if self.kind(tid) != BtfKind.TYPE_TAG:
                return tid
            tid = self.type(tid).type
        raise BtfError(f"{self._what}: type id {start}: chain of more than {_SHORT_CHAIN} "
                       "type tags (cycle?)")

    def _decl(self, tid: int, inner: str, depth: int, budget: List[int]) -> str:
        if depth > 200:
            raise BtfError(f"{self._what}: type id {tid}: declarator nesting too deep (cycle?)")
        budget[0] -= 1
        if budget[0] < 0:
            raise BtfError(f"{self._what}: type id {tid}: declaration too large (prototypes "
                           f"referring to themselves?)")
        K = BtfKind
        k = self.kind(tid)
        if k == K.TYPE_TAG:
            return self._decl(self.type(tid).type, inner, depth + 1, budget)
        if k in (K.CONST, K.VOLATILE, K.RESTRICT):
            q = {K.CONST: "const", K.VOLATILE: "volatile", K.RESTRICT: "restrict"}[k]
            target = self.type(tid).type
            t2 = self._skip_tags(target)
            if self.kind(t2) == K.PTR:
                return self._decl(target, f" {q}" + (f" {inner}" if inner else ""), depth + 1,
                                  budget)
            if self.kind(t2) in (K.ARRAY, K.FUNC_PROTO):
                return self._decl(target, inner, depth + 1, budget)
            return f"{q} " + self._decl(target, inner, depth + 1, budget)
        if k == K.PTR:
            target = self.type(tid).type
            t2 = self._skip_tags(target)
            d = "*" + inner
            if self.kind(t2) in (K.ARRAY, K.FUNC_PROTO):
                d = f"({d})"
            return self._decl(target, d, depth + 1, budget)
        if k == K.ARRAY:
            t = self.type(tid)
            return self._decl(t.array_type, f"{inner}[{t.array_nelems}]", depth + 1, budget)
        if k == K.FUNC_PROTO:
            t = self.type(tid)
            ps = [self._decl(p.type, p.name, depth + 1, budget) for p in t.params]
            if t.variadic:
                ps.append("...")
            return self._decl(t.type, f"{inner}({', '.join(ps) or 'void'})", depth + 1, budget)
        if k == K.VOID:
            base = "void"
        elif k in (K.STRUCT, K.UNION, K.ENUM, K.ENUM64, K.FWD):
            t = self.type(tid)
            kw = {K.STRUCT: "struct", K.UNION: "union", K.ENUM: "enum", K.ENUM64: "enum",
                  K.FWD: "union" if t.fwd_union else "struct"}[k]
            base = f"{kw} {t.name or '<anonymous>'}"
        elif k in (K.INT, K.FLOAT, K.TYPEDEF):
            base = self.name(tid)
        else:
            raise BtfError(f"{self._what}: type id {tid}: a {k.name} is not a C type")
        if not inner:
            return base
        return f"{base} {inner}" if not inner.startswith(" ") else base + inner

    def check_base(self) -> None:
        """Check that a split BTF fits the base it was opened on: every name
        of its own records that lies in the base's strings must start a
        string there. Split BTF does not say which base it was made for, and
        one made for another build usually still parses, with garbage names;
        raise :class:`BtfError` when any name falls inside a base string."""
        base = self.base
        if base is None:
            return
        w, first = self._words, self.first_id
        bad = total = 0
        example = None
        for i, p in enumerate(self._offs):
            no = w[p]
            if not no or no >= self.str_start:
                continue
            total += 1
            b = base
            while no < b.str_start:
                b = b.base  # type: ignore[assignment]
            if b.data[b._sbase + no - b.str_start - 1] != 0:
                bad += 1
                if example is None:
                    example = first + i
        if bad:
            raise BtfError(f"{self._what}: {bad} of {total} names that refer to the base BTF "
                           f"start inside a base string (first: type id {example}): "
                           f"it was made for another base")

    # -- full validation ---------------------------------------------------

    def validate(self) -> None:
        """Decode and check every record of THIS object (references, strings, sizes,
        cycles); raise BtfError on the first problem."""
        for tid in self.ids():
            t = self.type(tid)
            k = t.kind
            if k in (BtfKind.PTR, BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST,
                     BtfKind.RESTRICT, BtfKind.TYPE_TAG, BtfKind.FWD, BtfKind.INT, BtfKind.FLOAT,
                     BtfKind.VAR, BtfKind.DECL_TAG, BtfKind.ARRAY) and t.vlen:
                raise BtfError(f"{self._what}: type id {tid} ({k.name}): vlen {t.vlen} must be 0")
            if k in _MODIFIERS:
                self.resolve(tid)
            if k == BtfKind.ARRAY:
                self.size_of(tid)
            if k == BtfKind.FUNC and self.kind(t.type) != BtfKind.FUNC_PROTO:
                raise BtfError(f"{self._what}: type id {tid} (FUNC): prototype {t.type} is not a "
                               f"FUNC_PROTO")
            if k in (BtfKind.STRUCT, BtfKind.UNION):
                for m in t.members:
                    if m.bitfield_size:
                        end = m.bit_offset + m.bitfield_size
                    elif t.kind_flag or self.kind(self.resolve(m.type)) not in (BtfKind.INT,
                                                                               BtfKind.ENUM):
                        if m.bit_offset % 8 and t.kind_flag:
                            raise BtfError(f"{self._what}: type id {tid} ({k.name}): member "
                                           f"{m.name!r} not byte-aligned (bit offset "
                                           f"{m.bit_offset})")
                        end = m.bit_offset + 8 * self._member_size(m.type)
                    else:  # kind_flag 0: an INT's own bits give the width
                        u = self.type(self.resolve(m.type))
                        end = m.bit_offset + (u.int_bits if u.kind == BtfKind.INT else 8 * u.size)
                    if end > 8 * t.size:
                        raise BtfError(f"{self._what}: type id {tid} ({k.name}): member "
                                       f"{m.name!r} ends at bit {end}, past the size {t.size}")
            if k == BtfKind.DATASEC:
                for s in t.secinfos:
                    if s.offset + s.size > t.size:
                        raise BtfError(f"{self._what}: type id {tid} (DATASEC): entry for type id "
                                       f"{s.type} [{s.offset}, +{s.size}) past the section size "
                                       f"{t.size}")


def _walk_py(words: array, fix: List[int], ele: List[int]) -> Tuple[array, Optional[tuple]]:
    """Pure-Python header walk: the start (in words) of every record.

    Returns ``(offsets, None)`` or ``(offsets, (code, index, word_pos, kind))`` where code 1 is
    an unknown kind, 2 a record running past the end, 3 kind 0.
    """
    offs = array("I")
    append = offs.append
    n = len(words)
    pos = 0
    try:
        while pos < n:
            info = words[pos + 1]
            k = (info >> 24) & 0x7F
            f = fix[k]
            if f < 0:
                return offs, (3 if k == 0 else 1, len(offs), pos, k)
            append(pos)
            pos += f + (info & 0xFFFFFF) * ele[k]
    except IndexError:
        return offs, (2, len(offs), pos, 0)
    if pos != n:
        return offs, (2, len(offs) - 1, offs[-1], 0)
    return offs, None
