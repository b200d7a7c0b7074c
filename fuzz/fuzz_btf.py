#!/usr/bin/env python3
"""Fuzz the BTF reader, the C accelerator and the BTF → drgn type conversion.

Seeds are small slices of the committed real BTF (``vmcores/<key>/btf/
{vmlinux,ext4,loop}.btf.zst`` and the variable BTF ``vmcores/<key>/vars/``):
a breadth-first closure of a few to a few dozen types, renumbered, with its
own string section, either as base BTF or as split BTF over a small base
slice. A few seeds are turned big-endian or given a 2026 layout section
(with an extra kind unknown to the reader).

Each input is one seed with 1–4 mutations: bit flips, byte writes, 32-bit
field rewrites inside records (type ids: self, cycles, out of range; kind;
vlen; kind_flag), truncation, record splicing from another seed, duplicated
or dropped records, header and string-section edits. For every input:

* ``Btf(data, accel=True)`` and ``Btf(data, accel=False)`` must agree: the
  same :class:`BtfError` message, or the same facts (record offsets, kinds,
  names, name index, every decoded record, resolve/size_of/format_c, var
  locations, the variable table, enumerator lookups, reference cycles,
  validate);
* every type id is converted by :class:`drgn_btfvars.types.TypeConverter` on
  a hand-made ``drgn.Program`` (x86-64) with a type finder over that BTF,
  and the resulting types are walked (members, parameters, typedef and
  array targets, ``sizeof``, ``str()``);
* only :class:`BtfError` may come out (and ``TypeError`` from ``drgn.sizeof``
  of a type without a size, which is drgn's documented answer).

Anything else is a finding: an unexpected exception, a disagreement between
the two readers, a hang (an input taking longer than ``--timeout``), or a
crash of the worker process (a segfault in C). Findings are written to
``--out`` (default ``fuzz/findings``) and can be replayed with ``--replay``.

Inputs are generated from ``(--seed, index)`` alone, so any input can be
regenerated. One worker process does the work (``--workers`` to change);
the parent only watches it, restarts it after a crash or hang, and prints
the figures::

    python3 fuzz/fuzz_btf.py --inputs 1000000 --seed 1     # the long run
    python3 fuzz/fuzz_btf.py --inputs 3000 --seed 7        # the short run (tests)
    python3 fuzz/fuzz_btf.py --replay fuzz/findings/FILE.bin
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import random
import signal
import struct
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from drgn_btfvars.btf import Btf, BtfError  # noqa: E402
from drgn_btfvars.btf import reader as btf_reader  # noqa: E402

KEYS = ("bookworm", "trixie", "sid")

# Word positions (relative to a record's start) of names and type ids, by kind.
_REF2 = frozenset((2, 8, 9, 10, 11, 12, 13, 14, 17, 18))
_FIXED = {1: 4, 2: 3, 3: 6, 4: 3, 5: 3, 6: 3, 7: 3, 8: 3, 9: 3, 10: 3, 11: 3, 12: 3, 13: 3,
          14: 4, 15: 3, 16: 3, 17: 4, 18: 3, 19: 3}
_ELEM = {4: 3, 5: 3, 6: 2, 13: 2, 15: 3, 19: 3}


def record_fields(words: Sequence[int], p: int) -> Tuple[List[int], List[int]]:
    """(name word indexes, type-id word indexes) of the record at word ``p``."""
    info = words[p + 1]
    k = (info >> 24) & 0x7F
    vlen = info & 0xFFFFFF
    names, refs = [p], []
    if k in _REF2:
        refs.append(p + 2)
    if k == 3:
        refs += [p + 3, p + 4]
    elif k in (4, 5):
        for j in range(vlen):
            names.append(p + 3 + 3 * j)
            refs.append(p + 4 + 3 * j)
    elif k == 6:
        names += [p + 3 + 2 * j for j in range(vlen)]
    elif k == 19:
        names += [p + 3 + 3 * j for j in range(vlen)]
    elif k == 13:
        for j in range(vlen):
            if j == vlen - 1 and words[p + 3 + 2 * j] == 0 and words[p + 4 + 2 * j] == 0:
                continue  # varargs marker
            names.append(p + 3 + 2 * j)
            refs.append(p + 4 + 2 * j)
    elif k == 15:
        refs += [p + 3 + 3 * j for j in range(vlen)]
    return names, refs


def record_words(btf: Btf, tid: int) -> List[int]:
    """The raw words of one record of ``btf``'s chain."""
    b = btf._owner(tid)
    p = b._offs[tid - b.first_id]
    end = b._offs[tid - b.first_id + 1] if tid + 1 < b.end_id else len(b._words)
    return list(b._words[p:end])


# ---------------------------------------------------------------------------
# Seeds: small closures of real BTF


class Seed:
    """A fuzz seed: ``split`` is the blob fuzzed; ``base`` (or None) its base."""

    def __init__(self, name: str, base: Optional[bytes], split: bytes) -> None:
        self.name, self.base, self.split = name, base, split


def encode(records: List[List[int]], strings: bytes, *, byteorder: str = "little",
           layout: Optional[Dict[int, Tuple[int, int]]] = None) -> bytes:
    """A BTF blob from raw record words and a string section."""
    fmt = "<" if byteorder == "little" else ">"
    types = b"".join(struct.pack(f"{fmt}{len(r)}I", *r) for r in records)
    hdr_len = 32 if layout is not None else 24
    lay = b""
    if layout is not None:
        n = max(layout) + 1
        lay = b"".join(struct.pack(f"{fmt}BBH", *layout.get(k, (0, 0)), 0) for k in range(n))
    hdr = struct.pack(f"{fmt}HBBI4I", 0xEB9F, 1, 0, hdr_len, 0, len(types), len(types), len(strings))
    if layout is not None:
        hdr += struct.pack(f"{fmt}2I", len(types) + len(strings) + (-len(strings)) % 4, len(lay))
        return hdr + types + strings + bytes((-len(strings)) % 4) + lay
    return hdr + types + strings


class _Strings:
    def __init__(self, start: int, base_empty: bool) -> None:
        self.start = start
        self.buf = bytearray(b"\0" if base_empty else b"")
        self.offs: Dict[bytes, int] = {b"": 0} if base_empty else {}

    def add(self, s: bytes) -> int:
        if not s and self.start == 0:
            return 0
        off = self.offs.get(s)
        if off is None:
            off = self.offs[s] = self.start + len(self.buf)
            self.buf += s + b"\0"
        return off


def _raw_string(btf: Btf, off: int) -> bytes:
    return btf.string(off).encode("utf-8", "surrogateescape")


def closure_seed(src: Btf, start: int, cap: int, split_from: int, name: str,
                 rng: random.Random) -> Seed:
    """A seed from the types reachable from ``start`` (breadth first, at most
    ``cap``). Types with id < ``split_from`` go to the base, the others to
    the split; with ``split_from`` 0 everything is one base BTF."""
    order: List[int] = []
    seen = {start}
    queue = [start]
    while queue and len(order) < cap:
        tid = queue.pop(0)
        order.append(tid)
        words = record_words(src, tid)
        _, refs = record_fields(words, 0)
        if (words[1] >> 24) & 0x7F == 15:
            refs = refs[:6]  # a DATASEC: a few of its variables only
        for r in refs:
            t = words[r]
            if t and t not in seen and t < src.end_id:
                seen.add(t)
                queue.append(t)
    kept = set(order)
    base_ids = sorted(t for t in order if t < split_from) if split_from else sorted(order)
    split_ids = sorted(t for t in order if t >= split_from) if split_from else []
    # A placeholder "int" closes references to types left out.
    newid: Dict[int, int] = {}
    for i, t in enumerate(base_ids):
        newid[t] = i + 1
    holder = len(base_ids) + 1
    for i, t in enumerate(split_ids):
        newid[t] = holder + 1 + i

    def emit(ids: List[int], strs: _Strings) -> List[List[int]]:
        out = []
        for t in ids:
            w = record_words(src, t)
            names, refs = record_fields(w, 0)
            k = (w[1] >> 24) & 0x7F
            if k == 15:  # keep only the entries whose variable was kept
                ents = [w[3 + 3 * j:6 + 3 * j] for j in range(w[1] & 0xFFFFFF)]
                ents = [e for e in ents if e[0] in kept][:6]
                w = w[:3] + [x for e in ents for x in e]
                w[1] = (w[1] & ~0xFFFFFF) | len(ents)
                names, refs = record_fields(w, 0)
            for n in names:
                w[n] = strs.add(_raw_string(src, w[n])) if w[n] else 0
            for r in refs:
                w[r] = newid.get(w[r], holder) if w[r] else 0
            out.append(w)
        return out

    bstrs = _Strings(0, True)
    base_recs = emit(base_ids, bstrs)
    base_recs.append([bstrs.add(b"int"), 1 << 24, 4, (1 << 24) | 32])  # placeholder INT
    base = encode(base_recs, bytes(bstrs.buf))
    if not split_from:
        return Seed(name, None, base)
    sstrs = _Strings(len(bstrs.buf), False)
    split = encode(emit(split_ids, sstrs), bytes(sstrs.buf))
    return Seed(name, base, split)


def _zstd(path: Path) -> bytes:
    import zstandard

    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().decompressobj().decompress(f.read())


@lru_cache(maxsize=1)
def make_seeds(per_kernel: int = 60) -> List[Seed]:
    """The seed corpus (deterministic): for each committed kernel, base slices
    of vmlinux, split slices of ext4 and loop, and of the variable BTF."""
    rng = random.Random(20260501)
    seeds: List[Seed] = []
    for key in KEYS:
        d = ROOT / "vmcores" / key
        if not (d / "btf" / "vmlinux.btf.zst").is_file():
            continue
        vml = Btf(_zstd(d / "btf" / "vmlinux.btf.zst"), name="vmlinux")
        sources = [("vmlinux", vml, 0)]
        for mod in ("ext4", "loop"):
            p = d / "btf" / f"{mod}.btf.zst"
            if p.is_file():
                sources.append((mod, Btf(_zstd(p), vml, name=mod), vml.end_id))
        pv = d / "vars" / "btf_global_variables.btf.zst"
        if pv.is_file():
            sources.append(("vars", Btf(_zstd(pv), vml, name="vars"), vml.end_id))
        # Interesting starting points: every kind, plus the variable sections.
        for sname, src, split_from in sources:
            n = per_kernel if sname == "vmlinux" else per_kernel // 3
            first = src.first_id
            for i in range(n):
                if sname == "vars" and i % 2 == 0:
                    starts = list(src.datasecs())
                    start = starts[i // 2 % len(starts)]
                else:
                    start = rng.randrange(first, src.end_id)
                cap = rng.choice((3, 6, 12, 24, 40))
                seeds.append(closure_seed(src, start, cap, split_from, f"{key}-{sname}-{start}",
                                          rng))
    if not seeds:
        raise SystemExit("no committed BTF fixtures under vmcores/*/btf")
    # Variants: big-endian, and a 2026 layout section with a kind unknown to the reader.
    extra = []
    for s in seeds[::7]:
        if s.base is None:
            extra.append(Seed(s.name + "-be", None, to_big_endian(s.split)))
            extra.append(Seed(s.name + "-layout", None, with_layout(s.split)))
    return seeds + extra


def _parse(blob: bytes) -> Tuple[str, int, int, int, int, int]:
    fmt = "<" if blob[:2] == b"\x9f\xeb" else ">"
    _, _, _, hl, to, tl, so, sl = struct.unpack_from(fmt + "HBBI4I", blob)
    return fmt, hl, to, tl, so, sl


def to_big_endian(blob: bytes) -> bytes:
    fmt, hl, to, tl, so, sl = _parse(blob)
    n = tl // 4
    words = struct.unpack_from(f"<{n}I", blob, hl + to)
    out = bytearray(blob)
    struct.pack_into(">HBBI4I", out, 0, 0xEB9F, 1, 0, hl, to, tl, so, sl)
    struct.pack_into(f">{n}I", out, hl + to, *words)
    return bytes(out)


def with_layout(blob: bytes) -> bytes:
    """The same types with a layout section, plus one record of kind 20 (3 words + a
    4-byte info + 8-byte elements), which only the layout section can size."""
    fmt, hl, to, tl, so, sl = _parse(blob)
    words = list(struct.unpack_from(f"<{tl // 4}I", blob, hl + to))
    recs: List[List[int]] = []
    p = 0
    while p < len(words):
        k = (words[p + 1] >> 24) & 0x7F
        n = _FIXED[k] + (words[p + 1] & 0xFFFFFF) * _ELEM.get(k, 0)
        recs.append(words[p:p + n])
        p += n
    recs.append([0, (20 << 24) | 2, 7, 0xAA, 1, 2, 3, 4])
    from drgn_btfvars.btf.format import KIND_ELEM_SIZE, KIND_INFO_SIZE

    layout = {k: (KIND_INFO_SIZE[k], KIND_ELEM_SIZE[k]) for k in KIND_INFO_SIZE}
    layout[0] = (0, 0)
    layout[20] = (4, 8)
    return encode(recs, blob[hl + so:hl + so + sl], layout=layout)


# ---------------------------------------------------------------------------
# Mutations

_INTERESTING32 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFF,
                  0x1000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


class Blob:
    """A mutable BTF blob and what we know of its structure (kept roughly in
    sync while mutating; mutations may make it wrong, which is fine)."""

    def __init__(self, data: bytes) -> None:
        self.b = bytearray(data)
        try:
            self.fmt, self.hl, self.to, self.tl, self.so, self.sl = _parse(data)
        except struct.error:
            self.fmt, self.hl, self.to, self.tl, self.so, self.sl = "<", 24, 0, 0, 0, 0
        self.recs: List[int] = []  # word offsets of records in the type section
        n = self.tl // 4
        try:
            words = struct.unpack_from(f"{self.fmt}{n}I", data, self.hl + self.to)
            p = 0
            while p < n:
                k = (words[p + 1] >> 24) & 0x7F
                self.recs.append(p)
                p += _FIXED.get(k, 3) + (words[p + 1] & 0xFFFFFF) * _ELEM.get(k, 0)
            self.words = words
        except (struct.error, IndexError):
            self.words = ()

    def word_pos(self, w: int) -> int:
        return self.hl + self.to + 4 * w

    def put32(self, pos: int, v: int) -> None:
        if 0 <= pos and pos + 4 <= len(self.b):
            struct.pack_into(self.fmt + "I", self.b, pos, v & 0xFFFFFFFF)

    def get32(self, pos: int) -> int:
        if 0 <= pos and pos + 4 <= len(self.b):
            return struct.unpack_from(self.fmt + "I", self.b, pos)[0]
        return 0

    def set_header(self, field: int, v: int) -> None:
        self.put32(4 + 4 * field, v)  # 0 hdr_len, 1 type_off, 2 type_len, 3 str_off, 4 str_len


def _mut_bitflip(rng, blob, seeds):
    for _ in range(rng.randint(1, 4)):
        if blob.b:
            i = rng.randrange(len(blob.b))
            blob.b[i] ^= 1 << rng.randrange(8)


def _mut_byte(rng, blob, seeds):
    if blob.b:
        i = rng.randrange(len(blob.b))
        blob.b[i] = rng.choice((0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)))


def _value(rng, blob, first_id):
    n = len(blob.recs)
    return rng.choice((
        rng.choice(_INTERESTING32),
        rng.randrange(0, first_id + n + 3),
        first_id + n, first_id + n - 1, first_id + n + 1,
        rng.getrandbits(32),
    ))


def _mut_field(rng, blob, seeds, first_id=1):
    if not blob.recs:
        return _mut_byte(rng, blob, seeds)
    p = rng.choice(blob.recs)
    nxt = [r for r in blob.recs if r > p]
    end = nxt[0] if nxt else blob.tl // 4
    w = rng.randrange(p, max(end, p + 3))
    blob.put32(blob.word_pos(w), _value(rng, blob, first_id))


def _mut_ref(rng, blob, seeds, first_id=1):
    """Point a type id somewhere: itself, a neighbour (cycles), 0, out of range."""
    if not blob.recs or not blob.words:
        return _mut_field(rng, blob, seeds, first_id)
    i = rng.randrange(len(blob.recs))
    try:
        _, refs = record_fields(blob.words, blob.recs[i])
    except IndexError:
        refs = []
    if not refs:
        return _mut_field(rng, blob, seeds, first_id)
    n = len(blob.recs)
    me = first_id + i
    target = rng.choice((me, me, me - 1, me + 1, rng.randrange(first_id, first_id + n), 0,
                         first_id + n, first_id + n + 1, 0xFFFFFFFF, 0x80000000,
                         rng.randrange(1, first_id + n)))
    blob.put32(blob.word_pos(rng.choice(refs)), target)


def _mut_info(rng, blob, seeds, first_id=1):
    """Rewrite a record's kind, vlen or kind_flag."""
    if not blob.recs:
        return _mut_byte(rng, blob, seeds)
    pos = blob.word_pos(rng.choice(blob.recs) + 1)
    info = blob.get32(pos)
    what = rng.randrange(4)
    if what == 0:
        info = (info & ~(0x7F << 24)) | (rng.choice((rng.randrange(0, 21), rng.randrange(128))) << 24)
    elif what == 1:
        v = info & 0xFFFFFF
        nv = rng.choice((0, 1, v + 1, max(v - 1, 0), v * 2, 0xFFFFFF, rng.randrange(1 << 24)))
        info = (info & ~0xFFFFFF) | (nv & 0xFFFFFF)
    elif what == 2:
        info ^= 1 << 31
    else:
        info = rng.getrandbits(32)
    blob.put32(pos, info)


def _mut_truncate(rng, blob, seeds):
    if not blob.b:
        return
    cut = rng.randrange(len(blob.b))
    del blob.b[cut:]
    if rng.random() < 0.5:  # keep the header consistent with the cut
        if cut <= blob.hl + blob.to + blob.tl:
            tl = max(0, (cut - blob.hl - blob.to) // 4 * 4)
            blob.set_header(2, tl)
            blob.set_header(3, blob.to + tl)
            blob.set_header(4, 0)
        else:
            blob.set_header(4, max(0, cut - blob.hl - blob.so))


def _records_bytes(blob: Blob, lo: int, hi: int) -> bytes:
    """Bytes of records lo..hi-1 of a blob's type section."""
    if not blob.recs:
        return b""
    starts = blob.recs + [blob.tl // 4]
    a, z = starts[min(lo, len(blob.recs))], starts[min(hi, len(blob.recs))]
    return bytes(blob.b[blob.word_pos(a):blob.word_pos(z)])


def _insert_types(blob: Blob, at_record: int, raw: bytes) -> None:
    """Insert raw record bytes before record ``at_record`` and fix the header
    (strings are after the types in every seed)."""
    starts = blob.recs + [blob.tl // 4]
    pos = blob.word_pos(starts[min(at_record, len(blob.recs))])
    blob.b[pos:pos] = raw
    blob.set_header(2, blob.tl + len(raw))
    if blob.so >= blob.to + blob.tl:
        blob.set_header(3, blob.so + len(raw))
    lo_off = blob.get32(24) if blob.hl >= 32 else 0
    if blob.hl >= 32 and lo_off >= blob.to + blob.tl:
        blob.put32(24, lo_off + len(raw))


def _mut_splice(rng, blob, seeds):
    """Insert records taken from another seed (their ids and names now mean
    other things)."""
    other = Blob(rng.choice(seeds).split)
    if not other.recs:
        return
    if other.fmt != blob.fmt:
        return _mut_dup(rng, blob, seeds)
    lo = rng.randrange(len(other.recs))
    raw = _records_bytes(other, lo, lo + rng.randint(1, 4))
    _insert_types(blob, rng.randint(0, len(blob.recs)), raw)


def _mut_dup(rng, blob, seeds):
    """Duplicate, drop or swap records (ids shift: references now point elsewhere)."""
    if not blob.recs:
        return
    i = rng.randrange(len(blob.recs))
    raw = _records_bytes(blob, i, i + 1)
    what = rng.randrange(3)
    if what == 0:
        _insert_types(blob, rng.randint(0, len(blob.recs)), raw)
    elif what == 1:
        pos = blob.word_pos(blob.recs[i])
        del blob.b[pos:pos + len(raw)]
        blob.set_header(2, blob.tl - len(raw))
        if blob.so >= blob.to + blob.tl:
            blob.set_header(3, blob.so - len(raw))
    elif len(blob.recs) > 1:
        j = rng.randrange(len(blob.recs))
        a, b = sorted((i, j))
        if a != b:
            ra, rb = _records_bytes(blob, a, a + 1), _records_bytes(blob, b, b + 1)
            mid = _records_bytes(blob, a + 1, b)
            pos = blob.word_pos(blob.recs[a])
            blob.b[pos:pos + len(ra) + len(mid) + len(rb)] = rb + mid + ra


def _mut_header(rng, blob, seeds):
    field = rng.randrange(7)
    if field < 5:
        old = blob.get32(4 + 4 * field)
        v = rng.choice((old + 4, max(old - 4, 0), old + 1, max(old - 1, 0), 0,
                        len(blob.b), len(blob.b) - blob.hl, rng.choice(_INTERESTING32),
                        rng.getrandbits(32)))
        blob.set_header(field, v)
    elif field == 5:  # magic, version, flags
        i = rng.randrange(4)
        if i < len(blob.b):
            blob.b[i] = rng.choice((0, 1, 2, 0x9F, 0xEB, 0xFF, rng.randrange(256)))
    else:  # grow the header to the layout form (with or without a layout section)
        extra = struct.pack(blob.fmt + "2I", rng.choice((0, 4, len(blob.b), rng.getrandbits(32))),
                            rng.choice((0, 4, 80, 84, 512, rng.getrandbits(32))))
        extra += bytes(rng.choice((0, 0, 4, 8)))
        if blob.hl == 24 and len(blob.b) >= 24:
            blob.b[24:24] = extra
            blob.put32(4, 24 + len(extra))


def _mut_strings(rng, blob, seeds):
    lo = blob.hl + blob.so
    hi = min(lo + blob.sl, len(blob.b))
    if hi <= lo:
        return _mut_byte(rng, blob, seeds)
    what = rng.randrange(4)
    if what == 0:
        blob.b[hi - 1] = rng.choice((0x41, 0xFF))  # not NUL-terminated
    elif what == 1:
        blob.b[lo] = rng.choice((0x41, 0))
    elif what == 2:  # invalid UTF-8, or a NUL in a name
        blob.b[rng.randrange(lo, hi)] = rng.choice((0xC3, 0xFF, 0x80, 0xED, 0))
    else:  # grow the string section without a terminator
        blob.b[hi:hi] = b"xyz"
        blob.set_header(4, blob.sl + 3)


MUTATORS = (
    (_mut_bitflip, 3), (_mut_byte, 2), (_mut_field, 4), (_mut_ref, 6), (_mut_info, 4),
    (_mut_truncate, 2), (_mut_splice, 2), (_mut_dup, 2), (_mut_header, 3), (_mut_strings, 2),
)
_MUT_TABLE = [m for m, w in MUTATORS for _ in range(w)]


def make_input(seed: int, index: int) -> Tuple[Optional[bytes], bytes]:
    """Input number ``index`` of a run: ``(base or None, blob)``."""
    seeds = make_seeds()
    rng = random.Random((seed << 32) ^ index)
    s = seeds[rng.randrange(len(seeds))]
    base = s.base
    first_id = 1
    if base is not None:
        bb = Blob(base)
        first_id = 1 + len(bb.recs)
    target = s.split
    mutate_base = base is not None and rng.random() < 0.15
    blob = Blob(base if mutate_base else target)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        m = rng.choice(_MUT_TABLE)
        try:
            if m in (_mut_field, _mut_ref, _mut_info):
                m(rng, blob, seeds, 1 if mutate_base else first_id)
            else:
                m(rng, blob, seeds)
        except (IndexError, ValueError, struct.error):
            pass  # a mutation that does not fit what earlier ones left: skip it
        blob = Blob(bytes(blob.b)) if rng.random() < 0.5 else blob
    if mutate_base:
        return bytes(blob.b), target
    return base, bytes(blob.b)


# ---------------------------------------------------------------------------
# The checks


class Disagreement(Exception):
    """The accelerated and the pure-Python reader differ."""


def _attempt(f, *args):
    try:
        return ("ok", f(*args))
    except BtfError as e:
        return ("BtfError", str(e))


def btf_facts(data: bytes, base: Optional[bytes], accel: bool, full: bool = True) -> list:
    """What is observable about opening ``data`` with one reader: with
    ``full``, everything; else what the C accelerator computes (the walk, the
    kinds, name and word lookups), the decoding being shared Python code."""
    try:
        b0 = Btf(base, name="base", accel=accel) if base is not None else None
    except BtfError as e:
        return ["base", str(e)]
    try:
        btf = Btf(data, b0, name="fuzz", accel=accel)
    except BtfError as e:
        return ["open", str(e)]
    facts: list = [list(btf._offs), btf.end_id, btf.str_end, btf.kind_counts(), list(btf.vars()),
                   list(btf.datasecs())]
    names = set()
    for tid in range(0, btf.end_id + 2):
        facts.append(_attempt(btf.raw_kind, tid))
        r = _attempt(btf.name, tid)
        facts.append(r)
        if r[0] == "ok":
            names.add(r[1])
        if not full:
            continue
        t = _attempt(btf.type, tid)
        facts.append(t)
        if t[0] == "ok":
            for m in t[1].members:
                names.add(m.name)
            for e in t[1].enumerators:
                names.add(e.name)
        facts.append(_attempt(btf.resolve, tid))
        facts.append(_attempt(btf.contains_itself, tid))
        facts.append(_attempt(btf.unnamed_cycle, tid))
        facts.append(_attempt(btf.compound, tid))
        facts.append(_attempt(btf.int_bit_field, tid))
        facts.append(_attempt(btf.size_of, tid))
        facts.append(_attempt(btf.format_c, tid))
    for raw in bytes(btf._strs).split(b"\0")[:48]:  # strings: member, enumerator names
        names.add(raw.decode("utf-8", "surrogateescape"))
    for nm in sorted(names)[:64] + ["int", "\udcff", "a\0b"]:
        facts.append((nm, btf.find(nm), btf.find_all(nm)))
        facts.append(_attempt(btf.find_enumerator, nm))
    facts.append(_attempt(btf.var_locations))
    nsec = len(list(btf.datasecs()))
    table = _attempt(btf.var_table, [None if i % 3 == 1 else 0x1000 * i for i in range(nsec)])
    if table[0] == "ok":
        facts.append([(nm, table[1].get(nm)) for nm in sorted(names)[:64] + ["\udcff", "a\0b"]])
    else:
        facts.append(table)
    for v in list(btf.vars())[:8]:
        facts.append(_attempt(btf.var_location, v))
    if not full:
        return facts
    for off in range(0, min(btf.str_end, 64)):
        facts.append(_attempt(btf.string, off))
    facts.append(_attempt(btf.validate))
    facts.append(_attempt(lambda: btf.ptr_size))
    return facts


_PROG = None


def _program():
    """A fresh drgn Program for x86-64 (no target), for the type conversion."""
    import drgn

    plat = drgn.Platform(drgn.Architecture.X86_64, drgn.PlatformFlags.IS_64_BIT |
                         drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    return drgn.Program(plat)


def convert_all(data: bytes, base: Optional[bytes]) -> int:
    """Convert every type id of the input to a drgn type and walk the result;
    return how many converted. Only BtfError (and sizeof's TypeError) may escape
    from our code."""
    import drgn

    from drgn_btfvars.btf import BtfKind
    from drgn_btfvars.types import TypeConverter

    try:
        b0 = Btf(base, name="base") if base is not None else None
        btf = Btf(data, b0, name="fuzz")
    except BtfError:
        return 0
    prog = _program()
    chain = [x for x in (b0, btf) if x is not None]

    def complete_fwd(owner, tag, is_union):
        kind = BtfKind.UNION if is_union else BtfKind.STRUCT
        for b in chain:
            ids = b.find(tag, kind)
            if ids:
                return b, ids[0]
        return None

    conv = TypeConverter(prog, complete_fwd)
    kinds = {drgn.TypeKind.STRUCT: (BtfKind.STRUCT,), drgn.TypeKind.UNION: (BtfKind.UNION,),
             drgn.TypeKind.ENUM: (BtfKind.ENUM, BtfKind.ENUM64),
             drgn.TypeKind.TYPEDEF: (BtfKind.TYPEDEF,), drgn.TypeKind.INT: (BtfKind.INT,),
             drgn.TypeKind.BOOL: (BtfKind.INT,), drgn.TypeKind.FLOAT: (BtfKind.FLOAT,)}

    def finder(prog_, kindset, name, filename):  # as finders.KernelBtf.type_finder
        for k in kindset:
            for b in chain:
                for bk in kinds.get(k, ()):
                    for i in b.find(name, bk):
                        if k in (drgn.TypeKind.INT, drgn.TypeKind.BOOL) and \
                                bool(b.type(i).int_encoding & 4) != (k == drgn.TypeKind.BOOL):
                            continue
                        return conv.type(b, i)
        return None

    prog.register_type_finder("fuzz", finder, enable_index=0)
    n = 0
    for tid in range(0, btf.end_id + 1):
        try:
            t = conv.type(btf, tid)
        except BtfError:
            continue
        n += 1
        walk_type(t, 2)
    for name in ("int", "struct list_head", "long unsigned int", "_Bool", "u32", "enum e"):
        try:
            prog.type(name)
        except (LookupError, BtfError):
            pass
    return n


def walk_type(t, depth: int) -> None:
    """Touch what a user touches: lazily converted members and parameters,
    targets, sizes, the C text."""
    import drgn

    try:
        drgn.sizeof(t)
    except TypeError:
        pass  # drgn: a type without a size (void, function, incomplete)
    except BtfError:
        pass
    try:
        str(t)
    except BtfError:
        pass
    if depth <= 0:
        return
    kind = t.kind
    try:
        if kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION, drgn.TypeKind.CLASS):
            if t.members is not None:
                for m in t.members:
                    try:
                        walk_type(m.type, depth - 1)
                        m.bit_field_size
                        m.object
                    except BtfError:
                        pass
        elif kind == drgn.TypeKind.FUNCTION:
            for p in t.parameters:
                try:
                    walk_type(p.type, depth - 1)
                except BtfError:
                    pass
            walk_type(t.type, depth - 1)
        elif kind in (drgn.TypeKind.POINTER, drgn.TypeKind.ARRAY, drgn.TypeKind.TYPEDEF):
            walk_type(t.type, depth - 1)
        elif kind == drgn.TypeKind.ENUM and t.enumerators is not None:
            [(e.name, e.value) for e in t.enumerators]
            t.type
    except BtfError:
        pass


def check_one(base: Optional[bytes], data: bytes) -> str:
    """Run every check on one input; return a short outcome tag. Raises on a finding."""
    accel_ok = btf_reader._ACCEL is not None
    pure = btf_facts(data, base, accel=False, full=False)
    if accel_ok:
        fast = btf_facts(data, base, accel=True, full=False)
        if fast != pure:
            diff = next((i, a, b) for i, (a, b) in enumerate(zip(pure, fast)) if a != b) \
                if len(fast) == len(pure) else ("length", len(pure), len(fast))
            raise Disagreement(f"accelerated and pure-Python readers differ: {diff!r:.600}")
    if pure[0] in ("open", "base"):
        return "rejected"
    btf_facts(data, base, accel=accel_ok)  # everything else, with the reader sessions use
    convert_all(data, base)
    return "opened"


# ---------------------------------------------------------------------------
# Findings and the supervisor


def pack_input(base: Optional[bytes], data: bytes) -> bytes:
    b = base or b""
    return b"BTFZ" + struct.pack("<II", 1 if base is not None else 0, len(b)) + b + data


def unpack_input(raw: bytes) -> Tuple[Optional[bytes], bytes]:
    if raw[:4] != b"BTFZ":
        return None, raw  # a plain BTF blob
    has, n = struct.unpack_from("<II", raw, 4)
    return (raw[12:12 + n] if has else None), raw[12 + n:]


def save_finding(out: Path, kind: str, base: Optional[bytes], data: bytes, text: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    raw = pack_input(base, data)
    h = hashlib.sha256(raw).hexdigest()[:16]
    p = out / f"{kind}-{h}.bin"
    p.write_bytes(raw)
    p.with_suffix(".txt").write_text(text)
    return p


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang()


def worker(seed: int, start: int, stop: int, timeout: float, out: str, current, counters,
           stop_flag) -> None:
    """Run inputs start..stop-1 in this process; ``current`` tells the parent
    which input is running (so it can blame a crash or a hang on it)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    make_seeds()
    outdir = Path(out)
    for i in range(start, stop):
        if stop_flag.value:
            break
        base, data = make_input(seed, i)
        current.value = i
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            tag = check_one(base, data)
            counters[0 if tag == "opened" else 1] += 1
        except _Hang:
            counters[3] += 1
            save_finding(outdir, "hang", base, data, f"seed {seed} input {i}: longer than {timeout}s\n"
                         + traceback.format_exc())
        except BaseException as e:  # noqa: B902 - everything that is not ours is a finding
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(e, KeyboardInterrupt):
                raise
            counters[2] += 1
            kind = "disagree" if isinstance(e, Disagreement) else "exception"
            save_finding(outdir, kind, base, data, f"seed {seed} input {i}\n" + traceback.format_exc())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        current.value = i + 1
        counters[4] += 1


def run(seed: int, inputs: int, timeout: float, out: Path, start: int = 0,
        progress: float = 60.0) -> Dict[str, object]:
    """Supervise one worker over ``inputs`` inputs; restart it after a crash
    (a C segfault) or a hang the worker could not interrupt (C code)."""
    ctx = mp.get_context("fork")
    current = ctx.Value("q", start, lock=False)
    # opened, rejected, exceptions/disagreements, hangs (interrupted), done
    counters = ctx.Array("q", 5, lock=False)
    stop_flag = ctx.Value("i", 0, lock=False)
    crashes = 0
    killed_hangs = 0
    t0 = time.monotonic()
    last_report = t0
    pos = start
    end = start + inputs
    make_seeds()
    while pos < end:
        proc = ctx.Process(target=worker, args=(seed, pos, end, timeout, str(out), current, counters,
                                                stop_flag), daemon=True)
        proc.start()
        seen, seen_at = current.value, time.monotonic()
        while proc.is_alive():
            proc.join(0.5)
            now = time.monotonic()
            if current.value != seen:
                seen, seen_at = current.value, now
            elif now - seen_at > 4 * timeout + 10:  # stuck where SIGALRM cannot reach (C code)
                proc.kill()
                proc.join()
                break
            if progress and now - last_report >= progress:
                last_report = now
                done = counters[4]
                print(f"[{now - t0:7.0f}s] {done:,} inputs, {done / (now - t0):.0f}/s, "
                      f"findings {counters[2] + counters[3] + crashes + killed_hangs}",
                      file=sys.stderr, flush=True)
        i = current.value
        if proc.exitcode == 0 and i >= end:
            break
        # The worker died on input i (crash) or was killed there (hang).
        base, data = make_input(seed, i)
        if proc.exitcode is not None and proc.exitcode < 0 and proc.exitcode != -signal.SIGKILL:
            crashes += 1
            save_finding(out, "crash", base, data,
                         f"seed {seed} input {i}: worker died with signal {-proc.exitcode}\n")
        elif proc.exitcode == -signal.SIGKILL or proc.exitcode is None:
            killed_hangs += 1
            save_finding(out, "hang", base, data, f"seed {seed} input {i}: worker stuck, killed\n")
        else:
            crashes += 1
            save_finding(out, "crash", base, data, f"seed {seed} input {i}: worker exit {proc.exitcode}\n")
        counters[4] += 1
        pos = i + 1
        current.value = pos
    elapsed = time.monotonic() - t0
    done = counters[4]
    return {
        "seed": seed, "start": start, "inputs": done, "seconds": round(elapsed, 1),
        "per_second": round(done / elapsed, 1) if elapsed else None,
        "opened": counters[0], "rejected": counters[1],
        "unexpected_exceptions": counters[2], "hangs": counters[3] + killed_hangs,
        "crashes": crashes, "accelerator": btf_reader._ACCEL is not None,
        "seeds": len(make_seeds()), "findings_dir": str(out),
    }


def replay(path: Path) -> int:
    base, data = unpack_input(path.read_bytes())
    try:
        print(check_one(base, data))
    except Exception:
        traceback.print_exc()
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first input index (to resume a run)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per input before it is a hang")
    ap.add_argument("--out", type=Path, default=ROOT / "fuzz" / "findings")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines")
    ap.add_argument("--replay", type=Path, help="run the checks on one saved finding")
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    res = run(args.seed, args.inputs, args.timeout, args.out, args.start, args.progress)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22} {v}")
    bad = res["unexpected_exceptions"] or res["hangs"] or res["crashes"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
