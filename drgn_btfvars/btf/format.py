"""BTF on-disk format: constants, kinds and the header.

Facts only (see DESIGN.md §3): a header (magic 0xEB9F in the blob's byte
order, version 1, flags, hdr_len, then type/string section offset and length
relative to the end of the header, and since 2026 optionally a layout section),
then a type section of variable-length records and a string section.
"""

from __future__ import annotations

import enum
import struct
from typing import Dict, Optional, Tuple

from .record import Record

__all__ = [
    "BTF_MAGIC", "BTF_VERSION", "HDR_LEN_V1", "HDR_LEN_LAYOUT",
    "BTF_INT_SIGNED", "BTF_INT_CHAR", "BTF_INT_BOOL",
    "BTF_VAR_STATIC", "BTF_VAR_GLOBAL_ALLOCATED", "BTF_VAR_GLOBAL_EXTERN",
    "BTF_FUNC_STATIC", "BTF_FUNC_GLOBAL", "BTF_FUNC_EXTERN",
    "BtfKind", "BtfError", "BtfHeader", "KIND_INFO_SIZE", "KIND_ELEM_SIZE",
    "MAX_VLEN", "MAX_KIND", "MAX_TYPE_ID", "MAX_SIZE",
]

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HDR_LEN_V1 = 24          # magic..str_len
HDR_LEN_LAYOUT = 32      # + layout_off, layout_len (2026)

BTF_INT_SIGNED = 1
BTF_INT_CHAR = 2
BTF_INT_BOOL = 4

BTF_VAR_STATIC = 0
BTF_VAR_GLOBAL_ALLOCATED = 1
BTF_VAR_GLOBAL_EXTERN = 2

BTF_FUNC_STATIC = 0
BTF_FUNC_GLOBAL = 1
BTF_FUNC_EXTERN = 2

MAX_VLEN = 0xFFFFFF      # 24-bit vlen (2026 masks)
MAX_KIND = 0x7F          # 7-bit kind (2026 masks)
MAX_TYPE_ID = 0x7FFFFFFF
MAX_SIZE = 0xFFFFFFFF    # no object (struct, array, datasec) may exceed u32


class BtfError(Exception):
    """Malformed or unsupported BTF. The only exception the reader raises on bad input.

    The message names the object, and the type id or byte offset concerned.
    """


class BtfKind(enum.IntEnum):
    """BTF type kinds. ``UNKNOWN`` is ours: a kind this reader does not know,
    which could still be sized from the layout section."""

    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19
    UNKNOWN = 0x80


# Bytes following the 12-byte common record, and bytes per vlen element.
KIND_INFO_SIZE: Dict[int, int] = {
    1: 4, 2: 0, 3: 12, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0,
    12: 0, 13: 0, 14: 4, 15: 0, 16: 0, 17: 4, 18: 0, 19: 0,
}
KIND_ELEM_SIZE: Dict[int, int] = {
    1: 0, 2: 0, 3: 0, 4: 12, 5: 12, 6: 8, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0,
    12: 0, 13: 8, 14: 0, 15: 12, 16: 0, 17: 0, 18: 0, 19: 12,
}


class BtfHeader(Record):
    """A decoded BTF header: ``byteorder`` ("little" or "big"), ``version``,
    ``flags``, ``hdr_len``, ``type_off``, ``type_len``, ``str_off``,
    ``str_len``, ``layout_off`` and ``layout_len`` (0 without a layout section)."""

    byteorder: str
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    layout_off: int
    layout_len: int
    _fields = ("byteorder", "version", "flags", "hdr_len", "type_off", "type_len",
               "str_off", "str_len", "layout_off", "layout_len")
    _defaults = {"layout_off": 0, "layout_len": 0}

    @property
    def has_layout(self) -> bool:
        return self.hdr_len >= HDR_LEN_LAYOUT

    @staticmethod
    def parse(data: bytes, what: str = "BTF") -> "BtfHeader":
        """Decode and check the header of ``data`` (bounds, overlaps, alignment)."""
        n = len(data)
        if n < 8:
            raise BtfError(f"{what}: truncated header ({n} bytes, at least 24 needed) at offset 0")
        if data[0] == 0x9F and data[1] == 0xEB:
            order, fmt = "little", "<"
        elif data[0] == 0xEB and data[1] == 0x9F:
            order, fmt = "big", ">"
        else:
            raise BtfError(f"{what}: bad magic 0x{data[0]:02x}{data[1]:02x} at offset 0")
        version, flags = data[2], data[3]
        if version != BTF_VERSION:
            raise BtfError(f"{what}: unsupported version {version} at offset 2")
        if flags:
            raise BtfError(f"{what}: unsupported header flags 0x{flags:02x} at offset 3")
        (hdr_len,) = struct.unpack_from(fmt + "I", data, 4)
        if hdr_len < HDR_LEN_V1:
            raise BtfError(f"{what}: hdr_len {hdr_len} too small at offset 4")
        if hdr_len > n:
            raise BtfError(f"{what}: hdr_len {hdr_len} past the end of the data ({n} bytes) at offset 4")
        if hdr_len % 4:
            raise BtfError(f"{what}: hdr_len {hdr_len} not a multiple of 4 at offset 4")
        if HDR_LEN_V1 < hdr_len < HDR_LEN_LAYOUT:
            raise BtfError(f"{what}: hdr_len {hdr_len} cuts the layout fields at offset 4")
        type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "4I", data, 8)
        layout_off = layout_len = 0
        if hdr_len >= HDR_LEN_LAYOUT:
            layout_off, layout_len = struct.unpack_from(fmt + "2I", data, 24)
            tail = data[HDR_LEN_LAYOUT:hdr_len]
            if any(tail):
                raise BtfError(f"{what}: non-zero unknown header bytes at offset {HDR_LEN_LAYOUT + next(i for i, b in enumerate(tail) if b)}")
        body = n - hdr_len
        secs = [("type", type_off, type_len), ("string", str_off, str_len)]
        if layout_len or layout_off:
            secs.append(("layout", layout_off, layout_len))
        for sname, off, ln in secs:
            if off + ln > body:
                raise BtfError(f"{what}: {sname} section [{off}, {off + ln}) runs past the end "
                               f"of the data ({body} bytes after the header) at offset {hdr_len + off}")
        if type_off % 4:
            raise BtfError(f"{what}: type section offset {type_off} not 4-byte aligned at offset 8")
        if type_len % 4:
            raise BtfError(f"{what}: type section length {type_len} not a multiple of 4 at offset 12")
        if layout_len % 4 or layout_off % 4:
            raise BtfError(f"{what}: layout section [{layout_off}, +{layout_len}) not 4-byte aligned at offset 24")
        nonempty = sorted((off, off + ln, sname) for sname, off, ln in secs if ln)
        for (a0, a1, an), (b0, b1, bn) in zip(nonempty, nonempty[1:]):
            if b0 < a1:
                raise BtfError(f"{what}: {an} section [{a0}, {a1}) overlaps {bn} section [{b0}, {b1}) "
                               f"at offset {hdr_len + b0}")
        return BtfHeader(order, version, flags, hdr_len, type_off, type_len, str_off, str_len,
                         layout_off, layout_len)

    def pack(self) -> bytes:
        fmt = "<" if self.byteorder == "little" else ">"
        out = struct.pack(fmt + "HBBI4I", BTF_MAGIC, self.version, self.flags, self.hdr_len,
                          self.type_off, self.type_len, self.str_off, self.str_len)
        if self.hdr_len >= HDR_LEN_LAYOUT:
            out += struct.pack(fmt + "2I", self.layout_off, self.layout_len)
            out += bytes(self.hdr_len - HDR_LEN_LAYOUT)
        return out


def layout_table(data: bytes, hdr: BtfHeader, what: str = "BTF") -> Optional[Dict[int, Tuple[int, int]]]:
    """The layout section as {kind: (info_sz, elem_sz)}, or None without one."""
    if not hdr.has_layout or not hdr.layout_len:
        return None
    fmt = "<" if hdr.byteorder == "little" else ">"
    base = hdr.hdr_len + hdr.layout_off
    out: Dict[int, Tuple[int, int]] = {}
    for k in range(min(hdr.layout_len // 4, MAX_KIND + 1)):
        info_sz, elem_sz, _flags = struct.unpack_from(fmt + "BBH", data, base + 4 * k)
        if info_sz % 4 or elem_sz % 4:
            raise BtfError(f"{what}: layout entry for kind {k} has sizes ({info_sz}, {elem_sz}) "
                           f"not multiples of 4 at offset {base + 4 * k}")
        out[k] = (info_sz, elem_sz)
    return out
