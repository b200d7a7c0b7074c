"""Property: read(write(x)) == x for generated BTF records, both byte orders, base and split."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgn_btfvars.btf import (
    Btf, BtfBuilder, BtfEnumerator, BtfKind, BtfMember, BtfParam, BtfType, BtfVarSecinfo,
)

K = BtfKind
names = st.sampled_from(["", "a", "int", "task_struct", "x_y", "é", "long unsigned int"])
nonempty = names.filter(bool)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def record(draw, ref):
    """A valid BtfType (id 0; the caller sets it) whose references are drawn from ``ref``."""
    k = draw(st.sampled_from([k for k in BtfKind if k not in (K.VOID, K.UNKNOWN)]))
    nm = draw(names)
    if k == K.INT:
        size = draw(st.sampled_from([1, 2, 4, 8, 16]))
        bits = draw(st.integers(1, 8 * size))
        off = draw(st.integers(0, 8 * size - bits))
        return BtfType(0, k, nm, size=size, int_encoding=draw(st.sampled_from([0, 1, 2, 4])),
                       int_offset=off, int_bits=bits)
    if k in (K.PTR, K.VOLATILE, K.CONST, K.RESTRICT):
        return BtfType(0, k, "", type=draw(ref))
    if k in (K.TYPEDEF, K.TYPE_TAG):
        return BtfType(0, k, draw(nonempty), type=draw(ref))
    if k == K.ARRAY:
        return BtfType(0, k, "", array_type=draw(ref), array_index_type=draw(ref), array_nelems=draw(u32))
    if k in (K.STRUCT, K.UNION):
        kf = draw(st.booleans())
        if kf:
            ms = draw(st.lists(st.builds(BtfMember, names, ref, st.integers(0, 0xFFFFFF),
                                         st.integers(0, 255)), max_size=5))
        else:
            ms = draw(st.lists(st.builds(BtfMember, names, ref, u32, st.just(0)), max_size=5))
        return BtfType(0, k, nm, kf, len(ms), size=draw(u32), members=tuple(ms))
    if k in (K.ENUM, K.ENUM64):
        signed = draw(st.booleans())
        w = 32 if k == K.ENUM else 64
        vals = st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else st.integers(0, (1 << w) - 1)
        es = draw(st.lists(st.builds(BtfEnumerator, names, vals), max_size=4))
        return BtfType(0, k, nm, signed, len(es), size=draw(st.sampled_from([1, 2, 4, 8])),
                       enumerators=tuple(es))
    if k == K.FWD:
        u = draw(st.booleans())
        return BtfType(0, k, draw(nonempty), u, fwd_union=u)
    if k == K.FUNC:
        link = draw(st.integers(0, 2))
        return BtfType(0, k, draw(nonempty), vlen=link, type=draw(ref), linkage=link)
    if k == K.FUNC_PROTO:
        ps = draw(st.lists(st.builds(BtfParam, names, ref.filter(bool)), max_size=4))
        var = draw(st.booleans())
        return BtfType(0, k, "", vlen=len(ps) + var, type=draw(ref), params=tuple(ps), variadic=var)
    if k == K.VAR:
        return BtfType(0, k, draw(nonempty), type=draw(ref), linkage=draw(st.integers(0, 2)))
    if k == K.DATASEC:
        ss = draw(st.lists(st.builds(BtfVarSecinfo, ref, u32, u32), max_size=4))
        return BtfType(0, k, draw(nonempty), vlen=len(ss), size=draw(u32), secinfos=tuple(ss))
    if k == K.FLOAT:
        return BtfType(0, k, draw(nonempty), size=draw(st.sampled_from([2, 4, 8, 12, 16])))
    if k == K.DECL_TAG:
        return BtfType(0, k, draw(nonempty), type=draw(ref),
                       component_idx=draw(st.integers(-1, 1000)))
    raise AssertionError(k)


def with_id(t: BtfType, i: int) -> BtfType:
    return BtfType(**{**t.__dict__, "id": i})


@st.composite
def btf_spec(draw, first_id=1, max_n=25):
    n = draw(st.integers(0, max_n))
    ref = st.integers(0, first_id + n - 1) if first_id + n > 1 else st.just(0)
    return [with_id(draw(record(ref)), first_id + i) for i in range(n)]


def write(types, base=None, byteorder="little", layout=False) -> bytes:
    b = BtfBuilder(base, byteorder=byteorder, layout=layout)
    for t in types:
        assert b.add_type(t) == t.id
    return b.to_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(btf_spec(), st.sampled_from(["little", "big"]), st.booleans())
def test_roundtrip_base(types, byteorder, layout):
    data = write(types, byteorder=byteorder, layout=layout)
    btf = Btf(data)
    assert btf.byteorder == byteorder and len(btf) == len(types)
    assert [btf.type(i) for i in btf.ids()] == types
    # write(read(write(x))) is byte-identical.
    assert write([btf.type(i) for i in btf.ids()], byteorder=byteorder, layout=layout) == data
    for t in types:
        if t.name:
            assert t.id in btf.find(t.name, t.kind)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["little", "big"]))
def test_roundtrip_split_chain(data, byteorder):
    base_types = data.draw(btf_spec(1, 10))
    base = Btf(write(base_types, byteorder=byteorder))
    chain = [base]
    for depth in range(data.draw(st.integers(1, 3))):
        parent = chain[-1]
        types = data.draw(btf_spec(parent.end_id, 10))
        order = data.draw(st.sampled_from(["little", "big"]))
        blob = write(types, parent, order)
        split = Btf(blob, parent)
        assert split.first_id == parent.end_id and split.str_start == parent.str_end
        assert [split.type(i) for i in split.ids()] == types
        # Strings already in the chain are not stored again.
        own = set(bytes(split._strs).split(b"\0"))
        chain_strs = set()
        b = parent
        while b is not None:
            chain_strs |= set(bytes(b._strs).split(b"\0"))
            b = b.base
        assert not (own - {b""}) & chain_strs
        for t in types:
            if t.name:
                assert t.id in split.find_all(t.name)
        chain.append(split)
    top = chain[-1]
    for b in chain:
        for i in b.ids():
            assert top.type(i) == b.type(i)
