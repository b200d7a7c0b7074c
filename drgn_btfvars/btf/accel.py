"""Python face of the optional C accelerator (``drgn_btfvars.btf._accel``, built by cffi).

Each function mirrors a pure-Python path of reader.py and gives identical results.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from ._accel import ffi, lib  # type: ignore[import-not-found]  # ImportError -> pure Python

if TYPE_CHECKING:
    from .reader import Btf

__all__ = ["walk", "max_name_off", "kinds", "find_words", "NameIndex", "EnumIndex", "VarTable",
           "Cycles"]

_alloc = ffi.new_allocator(should_clear_after_alloc=False)


class NoString(ValueError):
    """An indexed name word is not a string offset of the chain (corrupt BTF)."""


def walk(words: array, fix: Sequence[int], ele: Sequence[int]) -> Tuple[array, Optional[tuple]]:
    n = len(words)
    cap = n // 3 + 1
    offs_c = _alloc("uint32_t[]", cap)
    count = ffi.new("size_t *")
    err = ffi.new("uint32_t[3]")
    wbuf = ffi.from_buffer("uint32_t[]", words) if n else ffi.NULL
    rc = lib.btfv_walk(wbuf, n, ffi.new("int32_t[]", list(fix)), ffi.new("uint32_t[]", list(ele)),
                       offs_c, count, err)
    # A view of the C array (pages past ``count`` are never touched); the
    # array itself is returned too, for pointers that outlive a call.
    offs = memoryview(ffi.buffer(offs_c, 4 * count[0])).cast("I")
    if rc:
        return offs, (rc, err[0], err[1], err[2]), offs_c
    return offs, None, offs_c


def _words_pointer(btf: "Btf") -> Tuple[object, object]:
    """``(owner, uint32_t *)`` of a Btf's native-order type words, taken from
    a ``bytes`` object. A pointer kept across calls must never come from a
    memoryview: at interpreter exit the garbage collector clears memoryviews
    caught in reference cycles even while a C pointer into them is held
    ("BufferError: memoryview has 1 exported buffer", then a crash); it
    never clears bytes."""
    w = btf._words
    if not len(w):
        return None, ffi.NULL
    if isinstance(w, memoryview):  # a view of btf.data (native byte order)
        keep = ffi.from_buffer("char[]", btf.data)
        return keep, ffi.cast("uint32_t *", keep + btf._type_base)
    raw = w.tobytes()  # the byte-swapped array, as bytes
    keep = ffi.from_buffer("char[]", raw)
    return keep, ffi.cast("uint32_t *", keep)


def max_name_off(words: array, offs: array) -> int:
    return lib.btfv_max_name_off(ffi.from_buffer("uint32_t[]", words),
                                 ffi.from_buffer("uint32_t[]", offs), len(offs))


def kinds(words: array, offs: array) -> bytes:
    out = bytearray(len(offs))
    if offs:
        lib.btfv_kinds(ffi.from_buffer("uint32_t[]", words), ffi.from_buffer("uint32_t[]", offs),
                       len(offs), ffi.from_buffer("uint8_t[]", out))
    return bytes(out)


def find_words(words: array, value: int) -> List[int]:
    """Indexes of every word equal to ``value``, ascending."""
    n = len(words)
    if not n:
        return []
    buf = ffi.from_buffer("uint32_t[]", words)
    out = []
    i = lib.btfv_find_word(buf, n, value, 0)
    while i >= 0:
        out.append(i)
        i = lib.btfv_find_word(buf, n, value, i + 1)
    return out


class _ChainStrings:
    """The string sections of a Btf's chain, as ``struct btfv_names`` wants them."""

    def __init__(self, btf: "Btf") -> None:
        chain: List["Btf"] = []
        b: Optional["Btf"] = btf
        while b is not None:
            chain.append(b)
            b = b.base
        chain.reverse()
        live = [c for c in chain if c.header.str_len]
        # Pointers into each object's bytes (see _words_pointer for why not
        # into memoryviews).
        self._keep = [ffi.from_buffer("char[]", c.data) for c in live]
        self.nseg = len(live)
        self.segs = ffi.new("const char *[]",
                            [k + c._sbase for k, c in zip(self._keep, live)] or [ffi.NULL])
        self.start = ffi.new("uint32_t[]", [c.str_start for c in live] or [0])
        self.len = ffi.new("uint32_t[]", [len(c._strs) for c in live] or [0])

    def struct(self, w: object, offs: object, count: int) -> object:
        """A ``struct btfv_names *`` over these strings (its index arrays unset)."""
        ix = ffi.new("struct btfv_names *")
        ix.w, ix.offs, ix.count = w, offs, count
        ix.segs, ix.start, ix.len, ix.nseg = self.segs, self.start, self.len, self.nseg
        return ix


class NameIndex:
    """Hash index of a Btf's names (its own types; strings anywhere in its chain).

    ``positions`` (a C ``uint32_t`` array and its length) indexes other name
    words of the type section instead of each record's: :meth:`find_raw`
    then gives indexes into it.
    """

    def __init__(self, btf: "Btf", positions: Optional[Tuple[object, int]] = None) -> None:
        self._strings = _ChainStrings(btf)
        self._first = btf.first_id
        if positions is None:
            n = len(btf._offs)
            o = btf._offs_c if n else ffi.NULL  # the walk's own C array
        else:
            o, n = positions
        self._n = n
        size = 16
        while size < 2 * n:  # at most half full (fewer slots used: one per distinct name)
            size *= 2
        self._table = ffi.new("uint32_t[]", size)
        self._hashes = _alloc("uint32_t[]", max(n, 1))
        self._link = _alloc("uint32_t[]", max(n, 1))
        self._wkeep, w = _words_pointer(btf)
        self._o = o
        ix = self._ix = self._strings.struct(w, o, n)
        ix.table, ix.mask, ix.hashes, ix.link = self._table, size - 1, self._hashes, self._link
        if n and lib.btfv_index_build(ix) < 0:
            # Record names were checked at open; other name words were not.
            raise NoString("a name offset without a string")

    def find(self, name: str) -> List[int]:
        """The type ids named ``name``, ascending."""
        raw = self.find_raw(name)
        first = self._first
        if len(raw) == 1:
            return [first + raw[0]]
        return sorted([first + i for i in raw])

    def find_raw(self, name: str) -> List[int]:
        """Indexes (records, or ``positions``) whose name is ``name``, unordered."""
        if not self._n or "\0" in name:
            return []
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate: no stored name decodes to it
            return []
        # A buffer per call: cffi releases the GIL during the call, so a
        # shared one could be filled by another thread's lookup meanwhile.
        cap = 8
        while True:
            out = _alloc("uint32_t[]", cap)
            k = lib.btfv_index_find(self._ix, raw, len(raw), out, cap)
            if k <= cap:
                break
            cap = k
        if k == 1:
            return [out[0]]
        return [out[i] for i in range(k)]


class EnumIndex:
    """Hash index of the enumerator names of a Btf's own ENUM and ENUM64
    records: :meth:`find` gives ``(type id, index)`` pairs, ascending (what
    reader.Btf.find_enumerator returns)."""

    def __init__(self, btf: "Btf") -> None:
        n = len(btf._offs)
        self._btf = btf
        self._wkeep, w = _words_pointer(btf)
        cap = len(btf._words) // 2 + 1
        pos = _alloc("uint32_t[]", cap)
        count = lib.btfv_enum_name_words(w, btf._offs_c, n, pos) if n else 0
        self._pos = pos
        self._index = NameIndex(btf, (pos, count))

    def find(self, name: str) -> List[Tuple[int, int]]:
        raw = self._index.find_raw(name)
        if not raw:
            return []
        btf = self._btf
        w, offs, first, pos = btf._words, btf._offs, btf.first_id, self._pos
        out = []
        for i in sorted(raw):
            wi = pos[i]
            r = bisect_right(offs, wi) - 1
            p = offs[r]
            step = 2 if (w[p + 1] >> 24) & 0x7F == 6 else 3
            out.append((first + r, (wi - p - 3) // step))
        return out


class VarTable:
    """Name -> ``(address, type id)`` of the VARs of a Btf (the first global,
    else the first static of a name), for the DATASECs whose base address
    ``bases`` gives (by DATASEC index; None: not in the table). What
    reader.Btf.var_table returns, with a C lookup instead of a dict."""

    def __init__(self, btf: "Btf", bases: Sequence[Optional[int]]) -> None:
        if btf._cindex is None:
            btf._cindex = NameIndex(btf)
        self._names = btf._cindex
        self._ix = btf._cindex._ix
        n = len(btf._offs)
        self._sec = _alloc("uint32_t[]", max(n, 1))
        self._off = _alloc("uint32_t[]", max(n, 1))
        self._wkeep, w = _words_pointer(btf)
        if n:
            bad = lib.btfv_var_locations(w, btf._offs_c, n, btf.first_id, self._sec, self._off)
            if bad:  # what var_records() says
                raise btf._bad_ref(btf._words[btf._offs[bad - 1] + 2], "type",
                                   btf.first_id + bad - 1)
        # Read through memoryviews: a shared C output buffer would race, as
        # cffi releases the GIL during calls.
        self._secv = memoryview(ffi.buffer(self._sec)).cast("I")
        self._offv = memoryview(ffi.buffer(self._off)).cast("I")
        self._bases = list(bases)
        self._nsec = len(self._bases)
        self._w = btf._words
        self._offs = btf._offs
        self._n = n

    def get(self, name: str) -> Optional[Tuple[int, int]]:
        if not self._n or not name or "\0" in name:  # a VAR has a name
            return None
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return None
        i = lib.btfv_var_find(self._ix, raw, len(raw))
        if i < 0:
            return None
        sec = self._secv[i]  # 0xffffffff: no DATASEC lists it
        if sec >= self._nsec:
            return None
        base = self._bases[sec]
        if base is None:
            return None
        return base + self._offv[i], self._w[self._offs[i] + 2]


class Cycles:
    """Which types of a Btf's own records reach themselves (reader.Btf._refs:
    ``by_value``, or through pointers too but not named structs and unions):
    Tarjan's components, grown from each type asked about."""

    def __init__(self, btf: "Btf", by_value: bool) -> None:
        n = len(btf._offs)
        self._strings = _ChainStrings(btf)
        self._wkeep, w = _words_pointer(btf)
        self._strs = self._strings.struct(w, btf._offs_c if n else ffi.NULL, n)
        self._first = btf.first_id
        self._by_value = int(by_value)
        self._state = ffi.new("uint32_t[1]")
        self._idx = ffi.new("uint32_t[]", max(n, 1))
        self._work = [_alloc("uint32_t[]", max(n, 1)) for _ in range(4)]
        self._flags = ffi.new("uint8_t[]", max(n, 1))
        self._broken = False
        self._lock = threading.Lock()  # the search state is shared (and the GIL released)

    def reaches_itself(self, type_id: int) -> Optional[bool]:
        """Whether ``type_id`` (one of this object's) is on a cycle; None when
        a reference is out of range (corrupt BTF: ask the Python search,
        which says where)."""
        if self._broken:
            return None
        i = type_id - self._first
        with self._lock:
            if lib.btfv_cycles(self._strs, self._first, i, self._by_value, self._state,
                               self._idx, *self._work, self._flags):
                self._broken = True
                return None
            return bool(self._flags[i] & 1)
