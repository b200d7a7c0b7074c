"""Hand-built BTF: every kind decodes as built, in both byte orders, base and split."""

import pytest

from drgn_btfvars.btf import (
    BTF_FUNC_GLOBAL, BTF_INT_SIGNED, BTF_VAR_STATIC, Btf, BtfBuilder, BtfEnumerator, BtfError,
    BtfKind, BtfMember, BtfParam, BtfType, BtfVarSecinfo,
)


def build_all(byteorder="little", layout=False):
    b = BtfBuilder(byteorder=byteorder, layout=layout)
    i_int = b.add_int("int", 4, BTF_INT_SIGNED)
    i_long = b.add_int("long unsigned int", 8)
    ptr = b.add_ptr(i_int)
    arr = b.add_array(i_int, i_long, 10)
    st = b.add_struct("s", 48, [("a", i_int, 0, 0), ("b", arr, 32, 0), ("p", ptr, 320, 0)])
    bf = b.add_struct("bits", 4, [("x", i_int, 0, 3), ("y", i_int, 3, 5)])
    un = b.add_union("u", 8, [("i", i_int, 0, 0), ("l", i_long, 0, 0)])
    en = b.add_enum("e", 4, [("A", -1), ("B", 2)], signed=True)
    en2 = b.add_enum("ue", 4, [("C", 0xFFFFFFFF)])
    fwd = b.add_fwd("fw", union=True)
    td = b.add_typedef("int_t", i_int)
    vol = b.add_volatile(td)
    cst = b.add_const(vol)
    rst = b.add_restrict(ptr)
    proto = b.add_func_proto(i_int, [("x", i_int), ("y", ptr)], variadic=True)
    fn = b.add_func("f", proto, BTF_FUNC_GLOBAL)
    var = b.add_var("v", st, BTF_VAR_STATIC)
    ds = b.add_datasec(".data", 64, [(var, 0, 48)])
    fl = b.add_float("double", 8)
    dt = b.add_decl_tag("tag", st, 1)
    tt = b.add_type_tag("user", i_int)
    e64 = b.add_enum64("e64", 8, [("BIG", -(1 << 62)), ("NEG", -5)], signed=True)
    return b, locals()


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("layout", [False, True])
def test_every_kind(byteorder, layout):
    b, ids = build_all(byteorder, layout)
    btf = Btf(b.to_bytes(), name="t")
    assert btf.byteorder == byteorder
    assert btf.header.hdr_len == (32 if layout else 24)
    assert len(btf) == 22 and btf.first_id == 1 and btf.end_id == 23
    assert btf.type(ids["i_int"]) == BtfType(ids["i_int"], BtfKind.INT, "int", size=4,
                                             int_encoding=BTF_INT_SIGNED, int_bits=32)
    assert btf.type(ids["arr"]).array_nelems == 10
    s = btf.type(ids["st"])
    assert s.members == (BtfMember("a", 1, 0), BtfMember("b", ids["arr"], 32), BtfMember("p", ids["ptr"], 320))
    assert btf.type(ids["bf"]).kind_flag and btf.type(ids["bf"]).members[1] == BtfMember("y", 1, 3, 5)
    assert btf.type(ids["en"]).enumerators == (BtfEnumerator("A", -1), BtfEnumerator("B", 2))
    assert btf.type(ids["en2"]).enumerators == (BtfEnumerator("C", 0xFFFFFFFF),)
    assert btf.type(ids["fwd"]).fwd_union
    p = btf.type(ids["proto"])
    assert p.params == (BtfParam("x", 1), BtfParam("y", ids["ptr"])) and p.variadic and p.vlen == 3
    assert btf.type(ids["fn"]).linkage == BTF_FUNC_GLOBAL and btf.type(ids["fn"]).type == ids["proto"]
    assert btf.type(ids["var"]).linkage == BTF_VAR_STATIC
    assert btf.type(ids["ds"]).secinfos == (BtfVarSecinfo(ids["var"], 0, 48),)
    assert btf.type(ids["dt"]).component_idx == 1
    assert btf.type(ids["e64"]).enumerators == (BtfEnumerator("BIG", -(1 << 62)), BtfEnumerator("NEG", -5))
    assert btf.resolve(ids["cst"]) == ids["i_int"]
    assert btf.size_of(ids["arr"]) == 40 and btf.size_of(ids["cst"]) == 4
    assert btf.size_of(ids["ptr"]) == 8 and btf.size_of(ids["var"]) == 48
    assert list(btf.vars()) == [ids["var"]] and list(btf.datasecs()) == [ids["ds"]]
    assert btf.find("int") == [1] and btf.find("int", BtfKind.STRUCT) == []
    assert btf.find("nope") == []
    assert btf.kind(0) == BtfKind.VOID and btf.name(0) == "" and btf.type(0).kind == BtfKind.VOID
    for k in (BtfKind.FUNC, BtfKind.FUNC_PROTO, BtfKind.FWD):
        tid = next(i for i in btf.ids() if btf.kind(i) == k)
        with pytest.raises(BtfError):
            btf.size_of(tid)
    btf.validate()


def test_split_chain_depth_3():
    b, ids = build_all()
    base = Btf(b.to_bytes(), name="base")
    s1 = BtfBuilder(base)
    a = s1.add_struct("mod_s", 4, [("int", 1, 0, 0)])  # "int" reused from the base
    s1.add_var("mod_v", a)
    blob1 = s1.to_bytes()
    m1 = Btf(blob1, base, name="m1")
    assert m1.first_id == base.end_id and len(m1) == 2
    assert m1.type(a).members[0].name == "int"
    s2 = BtfBuilder(m1, byteorder="big")
    v = s2.add_var("int", a)
    m2 = Btf(s2.to_bytes(), m1, name="m2")
    assert m2.first_id == m1.end_id and m2.type(v).type == a and m2.name(v) == "int"
    assert m2.find("int") == [v] and m2.find_all("int") == [1, v]
    assert m2.type(1) == base.type(1)
    assert m2.kind(a) == BtfKind.STRUCT and m2.size_of(v) == 4
    with pytest.raises(BtfError, match="type id 99"):
        m2.type(99)


def test_format_c():
    b = BtfBuilder()
    i = b.add_int("int", 4, BTF_INT_SIGNED)
    c = b.add_int("char", 1)
    cc = b.add_const(c)
    pcc = b.add_ptr(cc)
    cpcc = b.add_const(pcc)
    arr = b.add_array(i, i, 4)
    parr = b.add_ptr(arr)
    proto = b.add_func_proto(i, [("fmt", pcc)], variadic=True)
    pproto = b.add_ptr(proto)
    afp = b.add_array(pproto, i, 2)
    s = b.add_struct(None, 4, [])
    fn = b.add_func("printk", proto)
    tag = b.add_type_tag("user", c)
    ptag = b.add_ptr(tag)
    v = b.add_var("table", afp)
    vol = b.add_volatile(i)
    vp = b.add_ptr(0)
    loop = b.add_typedef("loop", b.next_id() + 1)
    b.add_const(loop)
    btf = Btf(b.to_bytes())
    assert btf.format_c(pcc) == "const char *"
    assert btf.format_c(cpcc, "p") == "const char * const p"
    assert btf.format_c(parr) == "int (*)[4]"
    assert btf.format_c(pproto, "f") == "int (*f)(const char *fmt, ...)"
    assert btf.format_c(afp, "t") == "int (*t[2])(const char *fmt, ...)"
    assert btf.format_c(fn) == "int printk(const char *fmt, ...)"
    assert btf.format_c(s) == "struct <anonymous>"
    assert btf.format_c(ptag) == "char *"
    assert btf.format_c(v) == "int (*table[2])(const char *fmt, ...)"
    assert btf.format_c(vol, "x") == "volatile int x"
    assert btf.format_c(vp) == "void *"
    assert btf.format_c(loop) == "loop"  # a typedef is named, not followed
    b2 = BtfBuilder()
    d = b2.add_datasec(".data", 0, [])
    with pytest.raises(BtfError, match="type id 1: a DATASEC is not a C type"):
        Btf(b2.to_bytes()).format_c(d)


def test_find_kind_family():
    b = BtfBuilder()
    e = b.add_enum("e", 4, [("A", 1)])
    e64 = b.add_enum64("e", 8, [("B", 1 << 40)])
    s = b.add_struct("e", 4, [])
    btf = Btf(b.to_bytes())
    assert btf.find("e") == [e, e64, s]
    assert btf.find("e", BtfKind.ENUM) == [e]
    assert btf.find("e", (BtfKind.ENUM, BtfKind.ENUM64)) == [e, e64]
    assert btf.find_all("e", [BtfKind.STRUCT]) == [s]
