"""drgn type -> BTF conversion used to add the variables pahole leaves out."""

import pytest

drgn = pytest.importorskip("drgn")
from drgn import Qualifiers, TypeMember, TypeParameter  # noqa: E402

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind  # noqa: E402
from drgn_btfvars.gen.supplement import DrgnToBtf, Unsupported, _canon_int  # noqa: E402


def _base() -> Btf:
    b = BtfBuilder()
    ul = b.add_int("long unsigned int", 8)          # 1
    ch = b.add_int("char", 1, 1)                    # 2
    i = b.add_int("int", 4, 1)                      # 3
    b.add_array(ch, i, 4)                           # 4: gives the index type
    foo = b.add_struct("foo", 16, [("a", ul, 0, 0), ("b", ul, 64, 0)])  # 5
    b.add_typedef("foo_t", foo)                     # 6
    b.add_struct("foo", 8, [("a", ul, 0, 0)])       # 7: same name, other size
    return Btf(b.to_bytes())


def test_canon_int():
    assert _canon_int("long unsigned int") == _canon_int("unsigned long") == "unsigned long"
    assert _canon_int("long long int") == "long long"
    assert _canon_int("short unsigned int") == "unsigned short"
    assert _canon_int("char") == "char" and _canon_int("unsigned char") == "unsigned char"


def test_convert_nested_array_of_const():
    prog = drgn.Program(drgn.host_platform)
    base = _base()
    b = BtfBuilder(base)
    conv = DrgnToBtf(base, b)
    ul = prog.int_type("unsigned long", 8, False, qualifiers=Qualifiers.CONST)
    t = prog.array_type(prog.array_type(ul, 2), 3)    # const unsigned long [3][2]
    tid = conv.convert(t)
    out = Btf(b.to_bytes(), base)
    outer = out.type(tid)
    assert outer.kind == BtfKind.ARRAY and outer.array_nelems == 3 and outer.array_index_type == 3
    inner = out.type(outer.array_type)
    assert inner.kind == BtfKind.ARRAY and inner.array_nelems == 2
    c = out.type(inner.array_type)
    assert c.kind == BtfKind.CONST and c.type == 1
    # Memoised: the same type converts to the same id without new records.
    n = len(b)
    assert conv.convert(t) == tid and len(b) == n


def test_named_types_by_name_and_size():
    prog = drgn.Program(drgn.host_platform)
    base = _base()
    b = BtfBuilder(base)
    conv = DrgnToBtf(base, b)
    ul = prog.int_type("unsigned long", 8, False)
    foo16 = prog.struct_type("foo", 16, [TypeMember(ul, "a", 0), TypeMember(ul, "b", 64)])
    foo8 = prog.struct_type("foo", 8, [TypeMember(ul, "a", 0)])
    assert conv.convert(foo16) == 5
    assert conv.convert(foo8) == 7
    assert conv.convert(prog.typedef_type("foo_t", foo16)) == 6
    with pytest.raises(Unsupported):
        conv.convert(prog.struct_type("foo", 24, []))
    with pytest.raises(Unsupported):
        conv.convert(prog.struct_type(None, 8, [TypeMember(ul, "a", 0)]))


def test_function_pointer():
    prog = drgn.Program(drgn.host_platform)
    base = _base()
    b = BtfBuilder(base)
    conv = DrgnToBtf(base, b)
    i = prog.int_type("int", 4, True)
    fn = prog.function_type(i, [TypeParameter(prog.pointer_type(prog.void_type()), "p")], False)
    tid = conv.convert(prog.pointer_type(fn))
    out = Btf(b.to_bytes(), base)
    p = out.type(tid)
    assert p.kind == BtfKind.PTR
    proto = out.type(p.type)
    assert proto.kind == BtfKind.FUNC_PROTO and proto.type == 3
    assert [x.name for x in proto.params] == ["p"]
    assert out.type(proto.params[0].type).kind == BtfKind.PTR
