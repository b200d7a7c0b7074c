"""The engine's frozen records behave like frozen dataclasses."""

import pytest

from drgn_btfvars.btf import BtfKind
from drgn_btfvars.btf.format import BtfHeader
from drgn_btfvars.btf.types import BtfMember, BtfType


def test_fields_defaults_equality_hash_repr() -> None:
    m = BtfMember("x", 3, 64)
    assert (m.name, m.type, m.bit_offset, m.bitfield_size) == ("x", 3, 64, 0)
    assert m == BtfMember(name="x", type=3, bit_offset=64, bitfield_size=0)
    assert m != BtfMember("x", 3, 64, 1) and m != ("x", 3, 64, 0)
    assert len({m, BtfMember("x", 3, 64)}) == 1
    assert repr(m) == "BtfMember(name='x', type=3, bit_offset=64, bitfield_size=0)"
    t = BtfType(5, BtfKind.STRUCT, "s", size=8, members=(m,))
    assert t.vlen == 0 and t.members == (m,) and t.secinfos == ()
    h = BtfHeader("little", 1, 0, 24, 0, 10, 10, 5)
    assert h.layout_len == 0 and not h.has_layout


def test_frozen_and_strict() -> None:
    m = BtfMember("x", 3, 64)
    with pytest.raises(AttributeError):
        m.name = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del m.type
    with pytest.raises(TypeError, match="missing field 'bit_offset'"):
        BtfMember("x", 3)
    with pytest.raises(TypeError, match="no field 'nope'"):
        BtfMember("x", 3, 0, nope=1)
    with pytest.raises(TypeError, match="twice"):
        BtfMember("x", 3, 0, name="y")
    with pytest.raises(TypeError, match="takes 4 fields"):
        BtfMember("x", 3, 0, 0, 0)
