"""Decoded BTF records (plain frozen records; no drgn here)."""

from __future__ import annotations

from typing import Tuple

from .format import BtfKind
from .record import Record

__all__ = ["BtfMember", "BtfParam", "BtfEnumerator", "BtfVarSecinfo", "BtfType"]


class BtfMember(Record):
    """A STRUCT/UNION member. ``bitfield_size`` 0 means "not a bit field" (kind_flag form);
    without kind_flag the width comes from the member's INT type and this is 0.

    Fields: ``name: str``, ``type: int``, ``bit_offset: int``, ``bitfield_size: int = 0``.
    """

    name: str
    type: int
    bit_offset: int
    bitfield_size: int
    _fields = ("name", "type", "bit_offset", "bitfield_size")
    _defaults = {"bitfield_size": 0}


class BtfParam(Record):
    """A FUNC_PROTO parameter: ``name: str``, ``type: int``."""

    name: str
    type: int
    _fields = ("name", "type")


class BtfEnumerator(Record):
    """An ENUM/ENUM64 value (signed when the type's kind_flag is set):
    ``name: str``, ``value: int``."""

    name: str
    value: int
    _fields = ("name", "value")


class BtfVarSecinfo(Record):
    """A DATASEC entry: a VAR (or FUNC) id, its offset in the section and size."""

    type: int
    offset: int
    size: int
    _fields = ("type", "offset", "size")


class BtfType(Record):
    """One decoded BTF record. Fields not relevant to ``kind`` keep their defaults
    (``id`` and ``kind`` are required; see ``_defaults`` for the rest)."""

    id: int
    kind: BtfKind
    name: str
    kind_flag: bool
    vlen: int
    size: int
    type: int
    int_encoding: int
    int_offset: int
    int_bits: int
    array_type: int
    array_index_type: int
    array_nelems: int
    members: Tuple[BtfMember, ...]
    enumerators: Tuple[BtfEnumerator, ...]
    params: Tuple[BtfParam, ...]
    variadic: bool
    linkage: int
    secinfos: Tuple[BtfVarSecinfo, ...]
    component_idx: int
    fwd_union: bool
    _defaults = {
        "name": "", "kind_flag": False, "vlen": 0, "size": 0, "type": 0,
        "int_encoding": 0, "int_offset": 0, "int_bits": 0, "array_type": 0,
        "array_index_type": 0, "array_nelems": 0, "members": (), "enumerators": (),
        "params": (), "variadic": False, "linkage": 0, "secinfos": (),
        "component_idx": 0, "fwd_union": False,
    }
    _fields = ("id", "kind") + tuple(_defaults)
