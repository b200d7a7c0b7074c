"""Compare what BTF gives with what DWARF gives on the same kernel.

The "truth" is a dictionary made with drgn + the kernel's DWARF on the same
dump (see ``vmcores/truth.py`` for its format). Every comparison puts each
item in exactly one bucket:

``matched``
    BTF gives exactly what DWARF gives.
``mismatched``
    BTF gives something else: a bug (or a wrong type), never acceptable.
``known_loss``
    BTF cannot represent what DWARF shows, and the difference is one of the
    documented losses: a multi-dimensional array flattened by pahole ≤ 1.30,
    or a zero-length array (``x[0]``) that BTF cannot tell from a flexible
    array member (``x[]``). These are reported, never counted as matches.
``not_found``
    BTF gives nothing for the name.

This module knows nothing of where the truth or the BTF comes from.
"""

import re
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from drgn import Object, Type, TypeKind, sizeof

__all__ = (
    "Report",
    "compare_variables",
    "compare_types",
    "compare_functions",
    "compare_enums",
    "member_rows",
    "is_flattened_array",
    "is_zero_length_array",
    "param_names_only",
)

_DIMS = re.compile(r"((?:\[\d+\])+)$")


class Report:
    """Buckets of compared items with a reason for each non-match."""

    BUCKETS = ("matched", "mismatched", "known_loss", "not_found")

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: Dict[str, List[Tuple[str, str]]] = {b: [] for b in self.BUCKETS}
        #: Items DWARF itself cannot describe (a declaration only), with why.
        self.skipped: List[Tuple[str, str]] = []

    def add(self, bucket: str, name: str, reason: str = "") -> None:
        self.items[bucket].append((name, reason))

    def count(self, bucket: str) -> int:
        return len(self.items[bucket])

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.items.values())

    def summary(self) -> str:
        parts = [f"{b.replace('_', ' ')} {self.count(b)}" for b in self.BUCKETS]
        text = f"{self.what}: {self.total} compared: " + ", ".join(parts)
        if self.skipped:
            text += f" ({len(self.skipped)} skipped: DWARF has only a declaration)"
        return text

    def reasons(self, bucket: str, limit: int = 20) -> str:
        rows = self.items[bucket][:limit]
        more = self.count(bucket) - len(rows)
        text = "\n".join(f"  {n}: {r}" for n, r in rows)
        if more > 0:
            text += f"\n  ... and {more} more"
        return text

    def reason_counts(self, bucket: str) -> Counter:
        return Counter(r.split(":")[0] for _, r in self.items[bucket])


def is_flattened_array(dwarf_name: str, btf_name: str) -> bool:
    """Whether ``btf_name`` is ``dwarf_name`` with its array dimensions
    multiplied into one (``u64 [7][3][2]`` shown as ``u64 [42]``), which is
    what pahole ≤ 1.30 encodes. Anything else is not this loss."""
    d = _DIMS.search(dwarf_name)
    b = _DIMS.search(btf_name)
    if not d or not b or d.start() != b.start() or dwarf_name[: d.start()] != btf_name[: b.start()]:
        return False
    ddims = [int(x) for x in re.findall(r"\[(\d+)\]", d.group(1))]
    bdims = [int(x) for x in re.findall(r"\[(\d+)\]", b.group(1))]
    if len(ddims) < 2 or len(bdims) >= len(ddims):
        return False
    prod = 1
    for x in ddims:
        prod *= x
    bprod = 1
    for x in bdims:
        bprod *= x
    return prod == bprod


def is_zero_length_array(dwarf_name: str, btf_name: str) -> bool:
    """Whether the names differ only by ``[0]`` vs ``[]`` at the end: BTF
    encodes both as 0 elements, and a struct's last member is shown as a
    flexible array."""
    return (dwarf_name.endswith("[0]") and btf_name == dwarf_name[:-3] + "[]") or (
        btf_name.endswith("[0]") and dwarf_name == btf_name[:-3] + "[]"
    )


def _type_diff(dwarf: str, btf: str) -> Tuple[str, str]:
    if dwarf == btf:
        return "matched", ""
    if is_flattened_array(dwarf, btf):
        return "known_loss", f"flattened array: DWARF {dwarf!r}, BTF {btf!r}"
    if is_zero_length_array(dwarf, btf):
        return "known_loss", f"zero-length array: DWARF {dwarf!r}, BTF {btf!r}"
    return "mismatched", f"type: DWARF {dwarf!r}, BTF {btf!r}"


def compare_variables(
    truth_vars: Iterable[Dict[str, Any]],
    candidates: Callable[[str], List[Object]],
    *,
    sections: Optional[Iterable[str]] = None,
) -> Report:
    """Compare DWARF-typed variables with BTF.

    :param candidates: every object BTF gives for a name (several for
        same-named statics); the one at the DWARF address is compared.
    :param sections: only these truth sections (default: all).
    """
    wanted = set(sections) if sections is not None else None
    report = Report("variables")
    for v in truth_vars:
        if wanted is not None and v.get("section") not in wanted:
            continue
        name = v["name"]
        objs = candidates(name)
        if not objs:
            report.add("not_found", name)
            continue
        at = [o for o in objs if o.address_ == v["address"]]
        if not at:
            addrs = ", ".join(hex(o.address_ or 0) for o in objs[:4])
            report.add("mismatched", name, f"address: DWARF {v['address']:#x}, BTF {addrs}")
            continue
        bucket, reason = _type_diff(v["type"], at[0].type_.type_name())
        if bucket == "matched" and v.get("size") is not None:
            try:
                size = sizeof(at[0].type_)
            except (ValueError, TypeError):
                size = None
            if size is not None and size != v["size"]:
                bucket, reason = "mismatched", f"size: DWARF {v['size']}, BTF {size}"
        report.add(bucket, name, reason)
    return report


def member_rows(t: Type) -> List[List[Any]]:
    """``[name, bit_offset, bit_field_size, type_name]`` for each member."""
    rows = []
    for m in t.members or ():
        rows.append([m.name, m.bit_offset, m.bit_field_size, m.type.type_name()])
    return rows


_PREFERENCE = ("matched", "known_loss", "mismatched", "not_found")


def _best(results: Iterable[Tuple[str, str]]) -> Tuple[str, str]:
    """The best of the comparisons with several same-named BTF definitions."""
    return min(results, key=lambda r: _PREFERENCE.index(r[0]))


def _compare_layout(t: Dict[str, Any], btf_t: Type, depth: int = 0) -> Tuple[str, str]:
    """Compare a truth layout (``{kind, size, members}``, or an enum's
    ``{kind: "enum", compatible, enumerators}``) with a BTF type."""
    while btf_t.kind == TypeKind.ARRAY:
        btf_t = btf_t.type
    if t.get("kind") == "enum":
        return _compare_enum(t, btf_t)
    if not btf_t.is_complete():
        return "not_found", "incomplete in BTF"
    if btf_t.size != t["size"]:
        return "mismatched", f"size: DWARF {t['size']}, BTF {btf_t.size}"
    btf_members = btf_t.members or ()
    if len(btf_members) != len(t["members"]):
        return "mismatched", f"members: DWARF {len(t['members'])}, BTF {len(btf_members)}"
    worst, why = "matched", ""
    for d, m in zip(t["members"], btf_members):
        dname, doff, dbits, dtype = d[:4]
        b = [m.name, m.bit_offset, m.bit_field_size, m.type.type_name()]
        if (dname, doff, dbits or None) != (b[0], b[1], b[2] or None):
            return "mismatched", f"member {dname}: DWARF {d[:4]}, BTF {b}"
        bucket, reason = _type_diff(dtype, b[3])
        if bucket == "matched" and len(d) > 4 and isinstance(d[4], dict) and depth < 32:
            # An anonymous struct/union/enum member: compare it inline.
            bucket, reason = _compare_layout(d[4], m.type.unaliased(), depth + 1)
        if bucket in ("mismatched", "not_found"):
            return "mismatched", f"member {dname}: {reason}"
        if bucket == "known_loss" and worst == "matched":
            worst, why = bucket, f"member {dname}: {reason}"
    return worst, why


def compare_types(
    truth_types: Dict[str, Dict[str, Any]], lookup: Callable[[str], List[Type]]
) -> Report:
    """Compare struct/union layouts: size and every member's name, bit
    offset, bit-field size and type name.

    :param lookup: every BTF type with that name. The kernel has a few
        distinct structures sharing a tag (``struct dma_chan`` in
        ``dmaengine.h`` and in a driver); DWARF's answer is compared with
        each, and the best bucket wins (a match is tagged "ambiguous name").
    """
    return _compare_named("struct/union layouts", truth_types, lookup, _compare_layout,
                          complete=lambda t: t.get("size") is not None)


def _compare_named(
    what: str,
    truth: Dict[str, Dict[str, Any]],
    lookup: Callable[[str], List[Type]],
    compare: Callable[[Dict[str, Any], Type], Tuple[str, str]],
    complete: Callable[[Dict[str, Any]], bool],
) -> Report:
    """Compare named types with every same-named BTF definition; DWARF
    declarations (not ``complete``) are skipped; a match among several
    definitions is tagged "ambiguous name"."""
    report = Report(what)
    for name, t in truth.items():
        if not complete(t):
            report.skipped.append((name, "incomplete in DWARF"))
            continue
        cands = lookup(name)
        if not cands:
            report.add("not_found", name)
            continue
        bucket, why = _best(compare(t, c) for c in cands)
        if len(cands) > 1 and bucket == "matched":
            why = f"ambiguous name: {len(cands)} BTF definitions"
        report.add(bucket, name, why)
    return report


def param_names_only(dwarf_name: str, btf_type: Type) -> bool:
    """Whether DWARF's function type name is BTF's with other parameter
    names (pahole took the prototype from another definition, such as the
    weak ``sys_ni.c`` stub of a syscall)."""
    from drgn import TypeParameter

    if btf_type.kind != TypeKind.FUNCTION:
        return False
    params = btf_type.parameters
    if not params or all(p.name is None for p in params):
        return False
    markers = [f"__btfvars_param_{i}__" for i in range(len(params))]
    renamed = btf_type.prog.function_type(
        btf_type.type,
        [TypeParameter(p.type, m) for p, m in zip(params, markers)],
        btf_type.is_variadic,
    )
    pattern = re.escape(renamed.type_name())
    for m in markers:
        # A parameter may be named differently or not at all.
        pattern = pattern.replace(re.escape(" " + m), r"(?: [A-Za-z_][A-Za-z0-9_]*)?")
        pattern = pattern.replace(re.escape(m), r"(?:[A-Za-z_][A-Za-z0-9_]*)?")
    return re.fullmatch(pattern, dwarf_name) is not None


def compare_functions(
    truth_funcs: Dict[str, str], lookup: Callable[[str], Optional[Object]],
    addresses: Optional[Dict[str, int]] = None,
) -> Report:
    """Compare function types (and addresses, when given)."""
    report = Report("functions")
    for name, tname in truth_funcs.items():
        obj = lookup(name)
        if obj is None:
            report.add("not_found", name)
            continue
        if addresses is not None and name in addresses and obj.address_ != addresses[name]:
            report.add("mismatched", name,
                       f"address: DWARF {addresses[name]:#x}, BTF {obj.address_:#x}")
            continue
        bucket, reason = _type_diff(tname, obj.type_.type_name())
        if bucket == "mismatched" and param_names_only(tname, obj.type_):
            bucket = "known_loss"
            reason = f"parameter names: DWARF {tname!r}, BTF {obj.type_.type_name()!r}"
        report.add(bucket, name, reason)
    return report


def _compare_enum(e: Dict[str, Any], t: Type) -> Tuple[str, str]:
    if t.kind != TypeKind.ENUM:
        return "mismatched", f"kind: DWARF enum, BTF {t.kind.name.lower()}"
    if not t.is_complete():
        return "not_found", "incomplete in BTF"
    compatible = t.type.type_name()
    if compatible != e["compatible"]:
        return "mismatched", f"compatible type: DWARF {e['compatible']!r}, BTF {compatible!r}"
    values = [[x.name, x.value] for x in t.enumerators or ()]
    if values != [list(x) for x in e["enumerators"]]:
        return "mismatched", "enumerators differ"
    return "matched", ""


def compare_enums(
    truth_enums: Dict[str, Dict[str, Any]], lookup: Callable[[str], List[Type]]
) -> Report:
    """Compare named enums: compatible type and every enumerator."""
    return _compare_named("enums", truth_enums, lookup, _compare_enum,
                          complete=lambda e: e.get("compatible") is not None)
