"""The repairs on small synthetic BTF built with BtfBuilder."""

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind
from drgn_btfvars.gen.generate import check_variable_btf
from drgn_btfvars.gen.repair import dedup_against_base, base_index, repair


def _base() -> Btf:
    b = BtfBuilder()
    ulong = b.add_int("long unsigned int", 8)                       # 1
    b.add_int("int", 4, 1)                                           # 2
    st = b.add_struct("pair", 16, [("a", ulong, 0, 0), ("b", ulong, 64, 0)])  # 3
    td = b.add_typedef("pair_t", st)                                 # 4
    b.add_const(td)                                                  # 5
    b.add_volatile(ulong)                                            # 6
    v = b.add_var("pcpu", 2)                                         # 7
    b.add_datasec(".data..percpu", 4, [(v, 0, 4)])                   # 8
    return Btf(b.to_bytes())


def _raw(base: Btf) -> bytes:
    """What pahole might emit: needless copies of base types, an unsorted DATASEC
    with a duplicate and an overlapping entry, an unreachable type."""
    s = BtfBuilder(base)
    first = s.first_id                                               # 9
    st2 = s.add_struct("pair", 16, [("a", 1, 0, 0), ("b", 1, 64, 0)])  # 9  == base 3
    td2 = s.add_typedef("pair_t", st2)                               # 10 == base 4 (after 9)
    c2 = s.add_const(td2)                                            # 11 == base 5 (after 10)
    new = s.add_struct("only_here", 8, [("x", 1, 0, 0)])              # 12 new
    s.add_int("unused", 2)                                           # 13 unreachable
    v_a = s.add_var("a", c2)                                         # 14
    v_b = s.add_var("b", new)                                        # 15
    v_b2 = s.add_var("b", new)                                       # 16 duplicate of 15
    v_c = s.add_var("c", 2)                                          # 17 overlaps a
    v_d = s.add_var("d", 1)                                          # 18
    s.add_datasec(".data", 64, [(v_d, 40, 8), (v_a, 0, 16), (v_b, 16, 8), (v_b2, 16, 8),
                                (v_c, 8, 4)])                        # 19
    assert first == base.end_id
    return s.to_bytes()


def test_dedup_fixpoint():
    base = _base()
    raw = Btf(_raw(base), base)
    mapping, passes = dedup_against_base(raw, base_index(base))
    assert mapping == {9: 3, 10: 4, 11: 5}
    assert passes >= 1


def test_dedup_fixpoint_forward_references():
    # const -> typedef -> struct, written root first: needs one pass per level.
    base = _base()
    s = BtfBuilder(base)
    f = s.first_id
    s.add_const(f + 1)
    s.add_typedef("pair_t", f + 2)
    s.add_struct("pair", 16, [("a", 1, 0, 0), ("b", 1, 64, 0)])
    raw = Btf(s.to_bytes(), base)
    mapping, passes = dedup_against_base(raw, base_index(base))
    assert mapping == {f: 5, f + 1: 4, f + 2: 3}
    assert passes >= 3


def test_repair_counts_and_result():
    base = _base()
    b, rep = repair(base, _raw(base))
    out = Btf(b.to_bytes(), base)
    assert rep.raw_types == 11 and rep.raw_vars == 5 and rep.raw_datasecs == 1
    assert rep.deduplicated == 3
    assert rep.dropped_duplicate_entries == 1
    assert rep.dropped_overlapping_entries == 1
    assert rep.dropped_vars == 2
    assert rep.datasec_entries_unsorted == 1
    assert rep.pruned == 1          # the unused INT
    assert rep.kept_vars == 3 and rep.kept_datasecs == 1 and rep.other_types == 1
    kinds = [out.kind(i) for i in range(out.first_id, out.end_id)]
    assert kinds == [BtfKind.STRUCT, BtfKind.VAR, BtfKind.VAR, BtfKind.VAR, BtfKind.DATASEC]
    ds = out.type(out.end_id - 1)
    assert [(out.type(s.type).name, s.offset, s.size) for s in ds.secinfos] == [
        ("a", 0, 16), ("b", 16, 8), ("d", 40, 8)]
    # References remapped: 'a' now points at the base's const, 'b' at the new struct.
    a = out.type(ds.secinfos[0].type)
    assert a.type == 5 and base.kind(5) == BtfKind.CONST
    bvar = out.type(ds.secinfos[1].type)
    assert bvar.type == out.first_id and out.type(bvar.type).name == "only_here"


def test_repair_passes_own_check_with_meta():
    from drgn_btfvars.gen.meta import META_ENUM_NAME, VmlinuxInfo, meta_enumerators

    base = _base()
    info = VmlinuxInfo()
    info.sections = [(".data", 0xffffffff82000000)]
    info.build_id = bytes(range(20))
    info.release = "6.99.0-test"

    def extra(b, remap):
        b.add_enum64(META_ENUM_NAME, 8, meta_enumerators(base.data, info, [".data"]), False)

    b, _ = repair(base, _raw(base), extra=extra)
    assert check_variable_btf(b.to_bytes(), base) == []


def test_check_catches_overlap():
    base = _base()
    # The raw output itself has overlapping entries and no meta enum.
    problems = check_variable_btf(_raw(base), base)
    assert any("overlaps" in p for p in problems)
    assert any("btf_global_variables_meta" in p for p in problems)
