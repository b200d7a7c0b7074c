"""Corrupt BTF that the fuzzer (fuzz/fuzz_btf.py) found breaking the reader or
the conversion to drgn types: each case now gives a BtfError naming the type,
and nothing else (no RecursionError, no error from drgn, no endless loop)."""

import drgn
import pytest

from drgn_btfvars.btf import BTF_INT_SIGNED, Btf, BtfBuilder, BtfError, BtfKind
from drgn_btfvars.types import BtfConversionError, TypeConverter


def program() -> drgn.Program:
    return drgn.Program(drgn.Platform(drgn.Architecture.X86_64, drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))


def convert(b: BtfBuilder, type_id: int) -> drgn.Type:
    btf = Btf(b.to_bytes(), name="t")
    return TypeConverter(program()).type(btf, type_id)


def touch(t: drgn.Type) -> None:
    """What a user does with a type: print it, size it, look at its members."""
    str(t)
    if t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        for m in t.members:
            str(m.type)


def builder() -> BtfBuilder:
    b = BtfBuilder()
    b.add_int("int", 4, BTF_INT_SIGNED)  # id 1
    return b


def test_pointer_cycle() -> None:
    """PTR -> CONST -> PTR: no struct in between (Python recursion before)."""
    b = builder()
    p = b.add_ptr(b.next_id() + 1)
    b.add_const(p)
    with pytest.raises(BtfConversionError, match="type id [23]: reference cycle"):
        convert(b, p)


def test_array_and_typedef_cycle() -> None:
    b = builder()
    a = b.add_array(b.next_id() + 1, 1, 4)
    b.add_typedef("t", a)
    with pytest.raises(BtfConversionError, match="reference cycle"):
        convert(b, a)


def test_struct_containing_itself() -> None:
    """struct s { int a; struct s b; }: members are lazy, so only drgn's
    printing recursed ("maximum type depth exceeded")."""
    b = builder()
    s = b.add_struct("s", 8, [("a", 1, 0, 0), ("b", b.next_id(), 32, 0)])
    with pytest.raises(BtfConversionError, match=f"type id {s}: STRUCT refers to itself"):
        convert(b, s)
    assert Btf(b.to_bytes()).contains_itself(s)


def test_prototype_taking_itself() -> None:
    """A FUNC_PROTO whose parameter is a pointer to itself: no C spelling;
    drgn's printer recursed without end."""
    b = builder()
    proto = b.add_func_proto(1, [("f", b.next_id() + 1)])
    ptr = b.add_ptr(proto)
    for tid in (proto, ptr):
        with pytest.raises(BtfError, match="refers to itself"):
            convert(b, tid)
    assert Btf(b.to_bytes()).unnamed_cycle(proto)


def test_anonymous_struct_pointing_to_itself() -> None:
    b = builder()
    s = b.add_struct(None, 8, [("p", b.next_id() + 1, 0, 0)])
    b.add_ptr(s)
    with pytest.raises(BtfConversionError, match="refers to itself"):
        convert(b, s)


def test_named_cycles_are_fine() -> None:
    """What real kernels have: struct list_head { struct list_head *next, *prev; },
    a callback taking the struct that holds it."""
    b = builder()
    lh = b.add_struct("list_head", 16, [("next", b.next_id() + 2, 0, 0),
                                        ("prev", b.next_id() + 2, 64, 0)])
    proto = b.add_func_proto(1, [("x", b.next_id() + 1)])
    ptr = b.add_ptr(lh)
    fp = b.add_ptr(proto)
    ops = b.add_struct("ops", 24, [("head", lh, 0, 0), ("cb", fp, 128, 0)])
    btf = Btf(b.to_bytes(), name="t")
    conv = TypeConverter(program())
    for tid in (lh, proto, ptr, fp, ops):
        touch(conv.type(btf, tid))
        assert not btf.contains_itself(tid) and not btf.unnamed_cycle(tid)
    assert str(conv.type(btf, fp)) == "int (*)(struct list_head *x)"


@pytest.mark.parametrize("case", ["member", "void-member", "array", "param", "return",
                                  "void-array", "fwd-array", "void-param", "anon-fwd",
                                  "bitfield", "utf8", "past-end"])
def test_what_c_cannot_declare(case: str) -> None:
    """Each was an exception from drgn (ValueError, TypeError, UnicodeEncodeError)
    when the type was built or printed."""
    b = builder()
    proto = b.add_func_proto(1, [])
    if case == "member":  # an anonymous member of function type
        tid = b.add_struct("s", 8, [(None, proto, 0, 0)])
    elif case == "void-member":
        tid = b.add_struct("s", 8, [("v", 0, 0, 0)])
    elif case == "fwd-array":  # an array of a union never defined (found by the long run)
        tid = b.add_array(b.add_fwd("u", union=True), 1, 4)
    elif case == "past-end":  # a member at bit 64 of a 4-byte struct
        tid = b.add_struct("s", 4, [("x", 1, 64, 0)])
    elif case == "array":
        tid = b.add_array(proto, 1, 2)
    elif case == "param":
        tid = b.add_func_proto(1, [(None, proto)])
    elif case == "return":
        tid = b.add_func_proto(b.add_array(1, 1, 2), [])
    elif case == "void-array":
        tid = b.add_array(0, 1, 2)
    elif case == "void-param":
        tid = b.add_func_proto(1, [("x", 0), ("y", 1)])
    elif case == "anon-fwd":
        tid = b.add_ptr(b.add_raw(BtfKind.FWD, "", 0, False, 0))
    elif case == "bitfield":  # 40 bits of an int
        tid = b.add_struct("s", 8, [("x", 1, 0, 40)])
    else:  # a name that is not UTF-8 (drgn cannot encode it)
        tid = b.add_struct("s\udcff", 4, [("a", 1, 0, 0)])
    with pytest.raises(BtfError):
        touch(convert(b, tid))


def test_deep_chain() -> None:
    """3,000 pointers deep: a clear error, not a RecursionError."""
    b = builder()
    t = 1
    for _ in range(3000):
        t = b.add_ptr(t)
    with pytest.raises(BtfConversionError, match="nested more than"):
        convert(b, t)


def test_reader_bounds() -> None:
    """size_of of a long chain of huge arrays stays cheap (saturated, not a
    3,000-word integer); format_c of prototypes whose parameters are those
    prototypes again stops (it grew exponentially within the depth cap); a
    cycle of type tags ends (it looped forever)."""
    b = builder()
    t = 1
    for _ in range(3000):
        t = b.add_array(t, 1, 0xFFFFFFFF)
    zero = b.add_array(t, 1, 0)
    p = b.add_func_proto(1, [])
    for _ in range(60):
        p = b.add_func_proto(1, [("a", b.add_ptr(p)), ("b", b.add_ptr(p)), ("c", b.add_ptr(p))])
    tag = b.add_type_tag("x", b.next_id() + 1)
    b.add_type_tag("y", tag)
    ptr = b.add_ptr(tag)
    btf = Btf(b.to_bytes())
    with pytest.raises(BtfError, match="exceeds 2\\^32-1"):
        btf.size_of(t)
    assert btf.size_of(zero) == 0
    with pytest.raises(BtfError, match="declaration too large"):
        btf.format_c(p)
    with pytest.raises(BtfError, match="type tags"):
        btf.format_c(ptr)


def test_enum_signedness_before_6_0() -> None:
    """BTF before Linux 6.0 does not mark signed enums: an enum with a value
    whose sign bit is set (-1, or 0xffffffff?) cannot be typed and is
    refused; once the BTF marks signed enums (any enum with kind_flag), an
    unmarked one is unsigned. Found on a real Debian 5.10 dump, where 13 of
    14 such enums are int in DWARF and 1 is unsigned int."""
    for marked in (False, True):
        b = builder()
        e = b.add_enum("e", 4, [("A", 0), ("B", 0xFFFFFFFF)])
        small = b.add_enum("f", 4, [("C", 1)])
        if marked:
            b.add_enum("g", 4, [("D", -1)], signed=True)
        btf = Btf(b.to_bytes(), name="t")
        conv = TypeConverter(program())
        assert conv.type(btf, small).type.name == "unsigned int"  # no sign bit: unsigned
        if marked:
            t = conv.type(btf, e)
            assert (t.type.name, t.enumerators[1].value) == ("unsigned int", 0xFFFFFFFF)
        else:
            with pytest.raises(BtfConversionError, match="predates signed enums"):
                conv.type(btf, e)
