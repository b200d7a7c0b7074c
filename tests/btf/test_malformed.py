"""Malformed input: every problem is a BtfError naming the id/offset; nothing else escapes."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgn_btfvars.btf import Btf, BtfBuilder, BtfError, BtfKind

from .test_basic import build_all


def exercise(btf: Btf) -> None:
    """Touch every query; only BtfError may come out."""
    btf.kind_counts()
    list(btf.vars())
    list(btf.datasecs())
    for i in range(0, btf.end_id + 2):
        for f in (btf.kind, btf.name, btf.type, btf.resolve, btf.size_of):
            try:
                f(i)
            except BtfError:
                pass
    for i in range(0, min(btf.str_end + 2, 300)):
        try:
            btf.string(i)
        except BtfError:
            pass
    for n in ("int", "s", "v", ""):
        btf.find(n)
        btf.find_all(n, BtfKind.STRUCT)
    try:
        btf.validate()
    except BtfError:
        pass


def open_or_btferror(data: bytes, base=None):
    try:
        b = Btf(data, base)
    except BtfError as e:
        assert str(e)
        return None
    exercise(b)
    return b


SMALL = build_all()[0].to_bytes()
SMALL_BE = build_all("big", layout=True)[0].to_bytes()


@pytest.mark.parametrize("blob", [SMALL, SMALL_BE], ids=["le", "be-layout"])
def test_truncation_everywhere(blob):
    for i in range(len(blob)):
        with pytest.raises(BtfError, match=r"offset \d+"):
            Btf(blob[:i])
    Btf(blob).validate()


@pytest.mark.parametrize("blob", [SMALL, SMALL_BE], ids=["le", "be-layout"])
def test_bit_flips(blob):
    n_ok = 0
    for pos in range(len(blob)):
        for bit in (0, 3, 7):
            bad = bytearray(blob)
            bad[pos] ^= 1 << bit
            if open_or_btferror(bytes(bad)) is not None:
                n_ok += 1
    assert n_ok > 0  # some flips (e.g. in values) are still valid BTF


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(SMALL)))
def test_random_corruption(edits, cut):
    bad = bytearray(SMALL)
    for pos, val in edits:
        bad[pos] = val
    open_or_btferror(bytes(bad[:max(cut, 0)] if cut < len(SMALL) // 2 else bad))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data):
    open_or_btferror(b"\x9f\xeb\x01\x00" + data)
    open_or_btferror(data)


def test_split_corruption():
    base = Btf(SMALL)
    s = BtfBuilder(base)
    s.add_struct("x", 4, [("int", 1, 0, 0)])
    s.add_var("vv", s.next_id() - 1)
    blob = s.to_bytes()
    for i in range(len(blob)):
        with pytest.raises(BtfError):
            Btf(blob[:i], base)
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x80
        open_or_btferror(bytes(bad), base)


def hdr(data: bytes, **fields) -> bytes:
    names = ["magic", "version", "flags", "hdr_len", "type_off", "type_len", "str_off", "str_len"]
    vals = list(struct.unpack_from("<HBBI4I", data))
    for k, v in fields.items():
        vals[names.index(k)] = v
    return struct.pack("<HBBI4I", *vals) + data[24:]


@pytest.mark.parametrize("data,msg", [
    (b"", "truncated header"),
    (hdr(SMALL, magic=0x1234), "bad magic"),
    (hdr(SMALL, version=2), "unsupported version 2 at offset 2"),
    (hdr(SMALL, flags=1), "unsupported header flags 0x01 at offset 3"),
    (hdr(SMALL, hdr_len=16), "hdr_len 16 too small"),
    (hdr(SMALL, hdr_len=28), "hdr_len 28"),
    (hdr(SMALL, hdr_len=1 << 30), "past the end"),
    (hdr(SMALL, type_off=2), "not 4-byte aligned"),
    (hdr(SMALL, str_off=8), "overlaps"),
    (hdr(SMALL, str_len=1 << 31), "runs past the end"),
    (hdr(SMALL, type_len=12), "not NUL-terminated|record runs past|overlaps|type id"),
])
def test_header_errors(data, msg):
    with pytest.raises(BtfError, match=msg):
        Btf(data)


def test_nonzero_unknown_header_bytes():
    b = build_all(layout=True)[0].to_bytes()
    # Grow the header to 36 bytes with a non-zero unknown field.
    h = struct.unpack_from("<HBBI6I", b)
    good = struct.pack("<HBBI6I", h[0], h[1], h[2], 36, *h[4:]) + b"\0\0\0\0" + b[32:]
    Btf(good).validate()
    bad = struct.pack("<HBBI6I", h[0], h[1], h[2], 36, *h[4:]) + b"\0\0\1\0" + b[32:]
    with pytest.raises(BtfError, match="non-zero unknown header bytes at offset 34"):
        Btf(bad)


def test_string_errors():
    b = BtfBuilder()
    b.add_int("int", 4)
    blob = bytearray(b.to_bytes())
    blob[-1] = ord("x")  # string section no longer NUL-terminated
    with pytest.raises(BtfError, match="NUL-terminated"):
        Btf(bytes(blob))
    blob = bytearray(b.to_bytes())
    struct.pack_into("<I", blob, 24, 1000)  # name_off of type 1
    with pytest.raises(BtfError, match="type id 1: name offset 1000 out of range"):
        Btf(bytes(blob))
    blob = bytearray(b.to_bytes())
    blob[24 + 16] = ord("x")  # first string must be ""
    with pytest.raises(BtfError, match="empty string"):
        Btf(bytes(blob))
    with pytest.raises(BtfError, match="string offset 99"):
        Btf(b.to_bytes()).string(99)


def test_reference_errors():
    b = BtfBuilder()
    i = b.add_int("int", 4)
    p = b.add_ptr(999)
    s = b.add_struct("s", 4, [("m", 777, 0, 0)])
    btf = Btf(b.to_bytes())
    with pytest.raises(BtfError, match=f"type id {p}.*type id 999 out of range"):
        btf.type(p)
    with pytest.raises(BtfError, match=f"type id {s}.*777"):
        btf.type(s)
    with pytest.raises(BtfError, match="type id 5 out of range"):
        btf.kind(5)
    with pytest.raises(BtfError, match="type id -1 out of range"):
        btf.type(-1)
    with pytest.raises(BtfError):
        btf.validate()
    assert btf.type(i).size == 4


def test_cycles():
    b = BtfBuilder()
    i = b.add_int("int", 4)
    t1 = b.add_typedef("a", b.next_id() + 1)
    t2 = b.add_const(t1)               # a -> const -> a
    arr = b.add_array(b.next_id(), i, 2)  # array of itself
    v = b.add_volatile(b.next_id() + 1)
    a2 = b.add_array(v, i, 3)           # volatile -> array -> volatile
    ptr = b.add_ptr(b.next_id())      # pointer to itself: fine
    btf = Btf(b.to_bytes())
    for tid in (t1, t2):
        with pytest.raises(BtfError, match=f"type id {tid}: reference cycle"):
            btf.resolve(tid)
        with pytest.raises(BtfError, match=f"type id {tid}"):
            btf.size_of(tid)
    for tid in (arr, v, a2):
        with pytest.raises(BtfError, match=f"type id {tid}: non-pointer reference cycle"):
            btf.size_of(tid)
    assert btf.resolve(ptr) == ptr and btf.size_of(ptr) == 8
    with pytest.raises(BtfError, match="cycle"):
        btf.validate()


def test_absurd_sizes():
    b = BtfBuilder()
    i = b.add_int("int", 4)
    a = b.add_array(i, i, 0xFFFFFFFF)
    a2 = b.add_array(a, i, 0xFFFFFFFF)
    btf = Btf(b.to_bytes())
    with pytest.raises(BtfError, match=f"type id {a}: size \\d+ exceeds"):
        btf.size_of(a)
    with pytest.raises(BtfError, match=f"type id {a2}"):
        btf.size_of(a2)
    b = BtfBuilder()
    b.add_raw(BtfKind.INT, "int", 0, False, 3, struct.pack("<I", 24))
    with pytest.raises(BtfError, match="type id 1 \\(INT\\): size 3"):
        Btf(b.to_bytes()).type(1)
    b = BtfBuilder()
    b.add_raw(BtfKind.INT, "int", 0, False, 4, struct.pack("<I", 40))
    with pytest.raises(BtfError, match="type id 1 \\(INT\\): bad encoding"):
        Btf(b.to_bytes()).type(1)


def test_huge_vlen():
    b = BtfBuilder()
    b.add_int("int", 4)
    b.add_raw(BtfKind.STRUCT, "s", 0xFFFFFF, False, 4)
    with pytest.raises(BtfError, match="type id 2: record runs past the end .* at offset 40"):
        Btf(b.to_bytes())


def test_unknown_kinds():
    b = BtfBuilder()
    b.add_int("int", 4)
    b.add_raw(42, "new", 2, False, 1, b"\0" * 12)
    with pytest.raises(BtfError, match="type id 2: unknown kind 42 .* at offset 40"):
        Btf(b.to_bytes())
    b = BtfBuilder(extra_layout={42: (4, 4)})
    b.add_int("int", 4)
    n = b.add_raw(42, "new", 2, True, 1, b"\0" * 12)
    tail = b.add_ptr(1)
    btf = Btf(b.to_bytes())
    assert btf.header.hdr_len == 32
    assert btf.kind(n) == BtfKind.UNKNOWN and btf.raw_kind(n) == 42 and btf.name(n) == "new"
    assert btf.type(n).vlen == 2 and btf.type(n).kind_flag
    assert btf.type(tail).type == 1 and btf.find("new") == [n]
    with pytest.raises(BtfError, match="undefined"):
        btf.size_of(n)
    # A layout entry contradicting the format for a known kind.
    b = BtfBuilder(extra_layout={int(BtfKind.VAR): (8, 0)})
    b.add_int("int", 4)
    with pytest.raises(BtfError, match="layout entry for kind 14"):
        Btf(b.to_bytes())
    # Kind 0 in the type section.
    b = BtfBuilder()
    b.add_raw(0, "", 0, False, 0)
    with pytest.raises(BtfError, match="type id 1: kind 0"):
        Btf(b.to_bytes())


def test_split_uses_base_layout():
    b = BtfBuilder(extra_layout={42: (0, 4)})
    b.add_int("int", 4)
    base = Btf(b.to_bytes())
    s = BtfBuilder(base)
    n = s.add_raw(42, "x", 3, False, 0, b"\0" * 12)
    s.add_ptr(n)
    split = Btf(s.to_bytes(), base)
    assert split.header.hdr_len == 24 and split.kind(n) == BtfKind.UNKNOWN
    assert split.type(n + 1).type == n
    # Without any layout in the chain the unknown kind is an error naming it.
    plain = Btf(BtfBuilder().to_bytes())
    s = BtfBuilder(plain)
    s.add_raw(42, "x", 3, False, 0, b"\0" * 12)
    with pytest.raises(BtfError, match="type id 1: unknown kind 42"):
        Btf(s.to_bytes(), plain)


def test_validate_member_bounds():
    b = BtfBuilder()
    i = b.add_int("int", 4)
    b.add_struct("ok", 8, [("a", i, 0, 0), ("b", i, 32, 0)])
    b.add_struct("bits", 1, [("a", i, 0, 3), ("b", i, 3, 5)])
    Btf(b.to_bytes()).validate()
    for members, size in ([("a", i, 0, 0), ("b", i, 40, 0)], 8), ([("a", i, 5, 4)], 1):
        b = BtfBuilder()
        i = b.add_int("int", 4)
        s = b.add_struct("bad", size, members)
        with pytest.raises(BtfError, match=f"type id {s} \\(STRUCT\\): member .* past the size"):
            Btf(b.to_bytes()).validate()


def test_builder_rejects_out_of_range_values():
    b = BtfBuilder()
    with pytest.raises(ValueError):
        b.add_ptr(-5)
    with pytest.raises(ValueError):
        b.add_array(1, 1, 1 << 32)
    with pytest.raises(ValueError):
        b.add_enum64("e", 8, [("X", 1 << 64)])
    with pytest.raises(ValueError):
        b.add_struct("s", 4, [("a", 1, 1 << 24, 1)])
    with pytest.raises(ValueError):
        b.add_string("a\0b")


@st.composite
def random_records(draw):
    """A valid header and string table around random records (random kinds, vlens, words)."""
    order = draw(st.sampled_from(["<", ">"]))
    strs = b"\0int\0s\0v\0"
    recs = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 21))
        vlen = draw(st.integers(0, 4)) if draw(st.integers(0, 9)) else draw(st.integers(0, 0xFFFFFF))
        kflag = draw(st.booleans())
        words = [draw(st.sampled_from([0, 1, 2, 3, 5, 8, 0xFFFFFFFF, 0x80000000]) | st.integers(0, 40))
                 for _ in range(draw(st.integers(1, 10)))]
        info = (kflag << 31) | (kind << 24) | vlen
        recs.append(struct.pack(order + "I", words[0] % 12) + struct.pack(order + "I", info)
                    + struct.pack(order + f"{len(words) - 1}I", *words[1:]))
    types = b"".join(recs)
    hdr_ = struct.pack(order + "HBBI4I", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    return hdr_ + types + strs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_records())
def test_random_records(data):
    open_or_btferror(data)


def test_deep_chains_no_recursion_error():
    b = BtfBuilder()
    i = b.add_int("int", 4)
    t = i
    for _ in range(3000):
        t = b.add_ptr(t)
    top = t
    td = i
    for n in range(3000):
        td = b.add_typedef(f"t{n}", td)
    c1 = b.add_const(b.next_id() + 1)  # const -> ptr -> const: a pointer cycle
    p1 = b.add_ptr(c1)
    btf = Btf(b.to_bytes())
    assert btf.size_of(top) == 8 and btf.resolve(td) == i and btf.size_of(td) == 4
    with pytest.raises(BtfError, match="nesting too deep"):
        btf.format_c(top)
    with pytest.raises(BtfError, match="nesting too deep"):
        btf.format_c(p1)
    assert btf.format_c(td) == "t2999"
    btf.validate()
