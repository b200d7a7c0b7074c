"""Repair pahole's ``global_var`` split BTF so that a kernel accepts it, and shrink it.

pahole's raw output is refused by every kernel and can be far larger than
needed.  :func:`repair` reads it (split over the final base BTF) and writes a
new split BTF over the same base, doing, in this order:

1. **Structural re-dedup against the base.**  A split type whose record, once
   its own references are mapped, equals a base record (same kind, name,
   size, members, …) *is* that base type: every reference to it is sent to
   the base id and it is dropped.  Repeated until nothing changes, so chains
   (``typedef`` → ``const`` → ``struct``) collapse from the leaves up.  This
   is what sid's libbpf (1.7) leaves undone (~37k needless types on 7.2).
   VAR and DATASEC records are never mapped (each VAR is kept, in our
   DATASECs).  Cyclic groups of split types that only a hypothesis-based
   dedup could merge are left as they are (counted in the report).
2. **DATASEC entries sorted and made disjoint.**  The kernel's verifier wants
   every DATASEC's entries sorted by offset, not overlapping.  pahole emits
   some variables twice (same name, offset and size: ``bpf_*_proto``,
   ``init_uts_ns`` …): an entry that starts before the previous kept entry
   ends is dropped, and so is its VAR when no other entry uses it.
3. **Pruning.**  Only split types reachable from the kept VARs stay.
4. **Renumbering.**  The kept split types keep their relative order and get
   consecutive ids right after the base; every reference is remapped (split
   → new split id, deduplicated split → base id; base ids unchanged: pahole
   was given the final base BTF, so its base references already are final).

:func:`add_alias_vars` then adds VARs for linker-script aliases, and the
caller appends the metadata enum (:mod:`drgn_btfvars.gen.meta`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind, BtfType

__all__ = [
    "RepairReport",
    "record_key",
    "base_index",
    "dedup_against_base",
    "fix_datasecs",
    "repair",
    "referenced_ids",
]

_NEVER_MAP = (BtfKind.VAR, BtfKind.DATASEC)


@dataclasses.dataclass
class RepairReport:
    """What :func:`repair` did (counts), for the user and the tests."""

    raw_types: int = 0
    raw_vars: int = 0
    raw_datasecs: int = 0
    deduplicated: int = 0          # split types mapped onto base types
    dedup_passes: int = 0
    datasec_entries_unsorted: int = 0   # DATASECs whose entries were not sorted
    dropped_duplicate_entries: int = 0  # same name, offset and size as the previous entry
    dropped_overlapping_entries: int = 0
    dropped_vars: int = 0
    pruned: int = 0                # unreachable split types dropped
    kept_types: int = 0
    kept_vars: int = 0
    kept_datasecs: int = 0
    other_types: int = 0           # kept split types that are neither VAR nor DATASEC
    dropped_names: List[str] = dataclasses.field(default_factory=list)

    def lines(self) -> List[str]:
        """Human-readable summary lines."""
        out = [
            f"input: {self.raw_types} types ({self.raw_vars} VAR, {self.raw_datasecs} DATASEC, "
            f"{self.raw_types - self.raw_vars - self.raw_datasecs} other)",
            f"re-dedup against the base: {self.deduplicated} split types mapped onto base types "
            f"({self.dedup_passes} passes)",
            f"DATASEC entries: {self.dropped_duplicate_entries} duplicate and "
            f"{self.dropped_overlapping_entries} overlapping entries dropped "
            f"({self.dropped_vars} VARs), {self.datasec_entries_unsorted} DATASECs re-sorted",
            f"pruned {self.pruned} unreachable split types",
            f"result: {self.kept_types} types ({self.kept_vars} VAR, {self.kept_datasecs} DATASEC, "
            f"{self.other_types} other)",
        ]
        return out


def record_key(t: BtfType, r: Callable[[int], int]) -> Tuple:
    """A hashable form of record ``t`` with its type references passed through ``r``.

    Two records with equal keys (references already in one id space) are the
    same type.
    """
    k = t.kind
    K = BtfKind
    if k in (K.STRUCT, K.UNION):
        return (k, t.name, t.kind_flag, t.size,
                tuple((m.name, r(m.type), m.bit_offset, m.bitfield_size) for m in t.members))
    if k in (K.ENUM, K.ENUM64):
        return (k, t.name, t.kind_flag, t.size, tuple((e.name, e.value) for e in t.enumerators))
    if k == K.INT:
        return (k, t.name, t.size, t.int_encoding, t.int_offset, t.int_bits)
    if k == K.ARRAY:
        return (k, r(t.array_type), r(t.array_index_type), t.array_nelems)
    if k == K.FUNC_PROTO:
        return (k, r(t.type), tuple((p.name, r(p.type)) for p in t.params), t.variadic)
    if k == K.FUNC:
        return (k, t.name, t.linkage, r(t.type))
    if k == K.VAR:
        return (k, t.name, t.linkage, r(t.type))
    if k == K.DATASEC:
        return (k, t.name, t.size, tuple((r(s.type), s.offset, s.size) for s in t.secinfos))
    if k == K.DECL_TAG:
        return (k, t.name, r(t.type), t.component_idx)
    if k == K.FWD:
        return (k, t.name, t.kind_flag)
    if k == K.FLOAT:
        return (k, t.name, t.size)
    # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
    return (k, t.name, r(t.type))


def referenced_ids(t: BtfType) -> List[int]:
    """Every type id record ``t`` refers to."""
    K = BtfKind
    k = t.kind
    if k in (K.STRUCT, K.UNION):
        return [m.type for m in t.members]
    if k == K.ARRAY:
        return [t.array_type, t.array_index_type]
    if k == K.FUNC_PROTO:
        return [t.type] + [p.type for p in t.params]
    if k == K.DATASEC:
        return [s.type for s in t.secinfos]
    if k in (K.INT, K.ENUM, K.ENUM64, K.FWD, K.FLOAT):
        return []
    return [t.type]


def _ident(i: int) -> int:
    return i


def base_index(base: Btf) -> Dict[Tuple, int]:
    """Record key → first base id with that record (every base type but VAR/DATASEC)."""
    idx: Dict[Tuple, int] = {}
    for tid in range(1, base.end_id):
        t = base.type(tid)
        if t.kind in _NEVER_MAP:
            continue
        idx.setdefault(record_key(t, _ident), tid)
    return idx


def dedup_against_base(split: Btf, index: Dict[Tuple, int],
                       max_passes: int = 1000) -> Tuple[Dict[int, int], int]:
    """Map split ids onto base ids by record equality, to a fixed point.

    Returns (split id → base id, passes).
    """
    mapping: Dict[int, int] = {}
    pending = [tid for tid in range(split.first_id, split.end_id)
               if split.type(tid).kind not in _NEVER_MAP]

    def r(i: int) -> int:
        return mapping.get(i, i)

    passes = 0
    while pending and passes < max_passes:
        passes += 1
        still = []
        for tid in pending:
            hit = index.get(record_key(split.type(tid), r))
            if hit is not None:
                mapping[tid] = hit
            else:
                still.append(tid)
        if len(still) == len(pending):
            break
        pending = still
    return mapping, passes


def fix_datasecs(split: Btf, report: RepairReport) -> Dict[int, List[Tuple[int, int, int]]]:
    """Sorted, disjoint entries per split DATASEC id (the duplicates dropped)."""
    out: Dict[int, List[Tuple[int, int, int]]] = {}
    for ds in split.datasecs():
        if ds < split.first_id:
            continue
        t = split.type(ds)
        entries = [(s.type, s.offset, s.size) for s in t.secinfos]
        order = sorted(range(len(entries)), key=lambda i: (entries[i][1], entries[i][2], i))
        if order != list(range(len(entries))):
            report.datasec_entries_unsorted += 1
        kept: List[Tuple[int, int, int]] = []
        end = 0
        prev_name: Optional[str] = None
        prev: Optional[Tuple[int, int, int]] = None
        for i in order:
            vid, off, size = entries[i]
            if kept and off < end:
                name = split.type(vid).name
                if prev is not None and (off, size) == prev[1:] and name == prev_name:
                    report.dropped_duplicate_entries += 1
                else:
                    report.dropped_overlapping_entries += 1
                report.dropped_names.append(name)
                continue
            kept.append((vid, off, size))
            prev, prev_name = (vid, off, size), split.type(vid).name
            end = max(end, off + size)
        out[ds] = kept
    return out


def repair(base: Btf, raw: bytes, *,
           extra: Optional[Callable[[BtfBuilder, Callable[[int], int]], None]] = None
           ) -> Tuple[BtfBuilder, RepairReport]:
    """Repair pahole's raw split BTF over ``base``; returns the builder (not yet
    serialised, so the caller can append types) and the report.

    ``extra(builder, remap)``, if given, is called after the kept types are
    written, with the function that maps an old (raw) id to its new id.
    """
    split = Btf(raw, base, name="pahole output")
    rep = RepairReport()
    counts = split.kind_counts()
    rep.raw_types = len(split)
    rep.raw_vars = counts.get(BtfKind.VAR, 0)
    rep.raw_datasecs = counts.get(BtfKind.DATASEC, 0)

    mapping, rep.dedup_passes = dedup_against_base(split, base_index(base))
    rep.deduplicated = len(mapping)
    sections = fix_datasecs(split, rep)

    # Reachability from the kept DATASECs (and so their VARs), through split types.
    keep = set()
    stack = list(sections)
    for ds, entries in sections.items():
        stack.extend(v for v, _, _ in entries)
    stack = list(dict.fromkeys(stack))
    keep.update(sections)
    while stack:
        tid = stack.pop()
        if tid < split.first_id:
            continue
        keep.add(tid)
        refs = (v for v, _, _ in sections[tid]) if tid in sections else \
            referenced_ids(split.type(tid))
        for ref in refs:
            ref = mapping.get(ref, ref)
            if ref >= split.first_id and ref not in keep:
                keep.add(ref)
                stack.append(ref)
    all_vars = set(split.vars()) - set(range(0, split.first_id))
    kept_vars = {v for v in all_vars if v in keep}
    rep.dropped_vars = len(all_vars - kept_vars)
    rep.pruned = sum(1 for tid in range(split.first_id, split.end_id)
                     if tid not in keep and tid not in mapping) - rep.dropped_vars

    b = BtfBuilder(base)
    order = [tid for tid in range(split.first_id, split.end_id) if tid in keep]
    new_id = {tid: b.first_id + i for i, tid in enumerate(order)}

    def remap(i: int) -> int:
        i = mapping.get(i, i)
        if i < split.first_id:
            return i
        return new_id[i]

    for tid in order:
        t = split.type(tid)
        if tid in sections:
            b.add_datasec(t.name, t.size, [(remap(v), o, s) for v, o, s in sections[tid]])
        else:
            b.add_type(t, remap)
    rep.kept_types = len(order)
    rep.kept_vars = len(kept_vars)
    rep.kept_datasecs = len(sections)
    rep.other_types = rep.kept_types - rep.kept_vars - rep.kept_datasecs
    if extra is not None:
        extra(b, remap)
    return b, rep
