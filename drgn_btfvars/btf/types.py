"""Decoded BTF records (plain frozen dataclasses; no drgn here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from .format import BtfKind

__all__ = ["BtfMember", "BtfParam", "BtfEnumerator", "BtfVarSecinfo", "BtfType"]


@dataclass(frozen=True)
class BtfMember:
    """A STRUCT/UNION member. ``bitfield_size`` 0 means "not a bit field" (kind_flag form);
    without kind_flag the width comes from the member's INT type and this is 0."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True)
class BtfParam:
    """A FUNC_PROTO parameter."""

    name: str
    type: int


@dataclass(frozen=True)
class BtfEnumerator:
    """An ENUM/ENUM64 value (signed when the type's kind_flag is set)."""

    name: str
    value: int


@dataclass(frozen=True)
class BtfVarSecinfo:
    """A DATASEC entry: a VAR (or FUNC) id, its offset in the section and size."""

    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class BtfType:
    """One decoded BTF record. Fields not relevant to ``kind`` keep their defaults."""

    id: int
    kind: BtfKind
    name: str = ""
    kind_flag: bool = False
    vlen: int = 0
    size: int = 0
    type: int = 0
    int_encoding: int = 0
    int_offset: int = 0
    int_bits: int = 0
    array_type: int = 0
    array_index_type: int = 0
    array_nelems: int = 0
    members: Tuple[BtfMember, ...] = ()
    enumerators: Tuple[BtfEnumerator, ...] = ()
    params: Tuple[BtfParam, ...] = ()
    variadic: bool = False
    linkage: int = 0
    secinfos: Tuple[BtfVarSecinfo, ...] = ()
    component_idx: int = 0
    fwd_union: bool = False
