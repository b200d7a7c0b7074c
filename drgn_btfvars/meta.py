"""The identity record of a variable BTF (``btf_global_variables_meta``).

The generator puts one unsigned 64-bit enum named
``btf_global_variables_meta`` into every variable BTF it writes. Its
enumerators are the only metadata the fake module can carry through the
kernel's BTF verifier (names must be C identifiers, values are integers):

=================================== =========================================
enumerator                          value
=================================== =========================================
``BTFVARS_FORMAT``                  1
``BTFVARS_BASE_SHA256``             first 8 bytes (big-endian) of the SHA-256
                                    of the vmlinux BTF it was generated against
``BTFVARS_BASE_LEN``                length of that vmlinux BTF
``BTFVARS_BUILD_ID_0`` … ``_2``     the vmlinux GNU build ID, 20 bytes as
                                    three big-endian u64 (zero-padded)
``BTFVARS_RELEASE_<hex>``           0; ``<hex>`` is ``uname -r`` hex-encoded
``BTFVARS_SECADDR_<n>``             link-time address of the ELF section
                                    described by the n-th DATASEC (type-id
                                    order, counting from 0)
``BTFVARS_SYM_<name>``              link-time address of symbol ``<name>``
=================================== =========================================

A second enum, ``btf_global_variables_bad_protos`` (optional), names the
functions whose one BTF ``FUNC`` prototype (pahole keeps one per name) is not
the prototype of the function kallsyms has under that name — typically a
same-named static whose code was inlined away (``copy_array`` on 6.1). Each
enumerator is a function name; the plugin refuses to type those functions.

This module only reads them; it knows nothing of drgn.
"""

import re
import struct
from typing import Dict, Iterable, Optional, Set, Tuple

from drgn_btfvars.btf import Btf, BtfError, BtfHeader, BtfKind

__all__ = ("BAD_PROTOS_ENUM_NAME", "RECORD_PREFIX", "META_ENUM_NAME", "META_FORMAT", "VarsMeta", "VarsMetaError", "release_hint")

META_ENUM_NAME = "btf_global_variables_meta"
BAD_PROTOS_ENUM_NAME = "btf_global_variables_bad_protos"
#: Enums of the variable BTF that are records of ours, not kernel types.
RECORD_PREFIX = "btf_global_variables_"
META_FORMAT = 1


class VarsMetaError(Exception):
    """The variable BTF has no usable identity record."""


class VarsMeta:
    """Parsed ``btf_global_variables_meta``."""

    def __init__(self) -> None:
        self.format = 0
        self.base_sha256 = 0
        self.base_len = 0
        self.build_id = ""
        self.release: Optional[str] = None
        self.section_addresses: Dict[int, int] = {}
        self.symbols: Dict[str, int] = {}
        #: DATASEC index → ELF section name, where the DATASEC name alone is ambiguous.
        self.section_names: Dict[int, str] = {}
        self.bad_protos: Set[str] = set()

    @classmethod
    def from_enumerators(cls, enumerators: Iterable[Tuple[str, int]]) -> "VarsMeta":
        """Decode the enumerators of ``btf_global_variables_meta`` (no checks
        of completeness: see :meth:`from_btf`)."""
        meta = cls()
        build_id = [0, 0, 0]
        seen_build_id = False
        for name, value in enumerators:
            if name == "BTFVARS_FORMAT":
                meta.format = value
            elif name == "BTFVARS_BASE_SHA256":
                meta.base_sha256 = value
            elif name == "BTFVARS_BASE_LEN":
                meta.base_len = value
            elif name.startswith("BTFVARS_BUILD_ID_") and name[-1] in "012":
                build_id[int(name[-1])] = value
                seen_build_id = True
            elif name.startswith("BTFVARS_RELEASE_"):
                meta.release = _unhex(name, "BTFVARS_RELEASE_")
            elif name.startswith("BTFVARS_SECADDR_"):
                meta.section_addresses[_index(name, "BTFVARS_SECADDR_")] = value
            elif name.startswith("BTFVARS_SECNAME_"):
                n, _, h = name[len("BTFVARS_SECNAME_"):].partition("_")
                meta.section_names[_index(n, "")] = _unhex(h, "")
            elif name.startswith("BTFVARS_SYM_"):
                meta.symbols[name[len("BTFVARS_SYM_"):]] = value
        if seen_build_id:
            raw = b"".join(v.to_bytes(8, "big") for v in build_id)[:20]
            meta.build_id = raw.hex()
        return meta

    @classmethod
    def from_btf(cls, btf: Btf) -> "VarsMeta":
        """Find and decode the record of a variable BTF, and check it is
        complete; also read the optional refused-prototypes list."""
        ids = [i for i in btf.find(META_ENUM_NAME) if btf.kind(i) in (BtfKind.ENUM64, BtfKind.ENUM)]
        if len(ids) != 1:
            raise VarsMetaError(
                f"it has {'no' if not ids else len(ids)} {META_ENUM_NAME} record"
                f"{'s' if ids else ''} (was it made by drgn-btfvars generate?)"
            )
        meta = cls.from_enumerators((e.name, e.value) for e in btf.type(ids[0]).enumerators)
        if meta.format != META_FORMAT:
            raise VarsMetaError(f"unknown {META_ENUM_NAME} format {meta.format}")
        if not meta.base_len:
            raise VarsMetaError(f"{META_ENUM_NAME} lacks the base BTF identity")
        for i in btf.find(BAD_PROTOS_ENUM_NAME):
            if btf.kind(i) in (BtfKind.ENUM, BtfKind.ENUM64):
                meta.bad_protos.update(e.name for e in btf.type(i).enumerators)
        return meta


def _unhex(text: str, prefix: str) -> str:
    try:
        return bytes.fromhex(text[len(prefix):]).decode()
    except ValueError:
        raise VarsMetaError(f"bad record {text}") from None


def _index(text: str, prefix: str) -> int:
    try:
        return int(text[len(prefix):])
    except ValueError:
        raise VarsMetaError(f"bad record {text}") from None


_RELEASE_RE = re.compile(rb"\0BTFVARS_RELEASE_([0-9a-f]{2,256})\0")


def release_hint(data: bytes) -> Optional[str]:
    """The kernel release a variable BTF names, read from its own string
    section without its base: for an error message about a variable BTF that
    does not fit this kernel (and so cannot be parsed over its vmlinux BTF)."""
    try:
        hdr = BtfHeader.parse(data)
    except BtfError:
        return None
    start = hdr.hdr_len + hdr.str_off
    m = _RELEASE_RE.search(data, max(start - 1, 0), start + hdr.str_len)
    if m is None:
        return None
    try:
        release = bytes.fromhex(m.group(1).decode()).decode()
    except ValueError:
        return None
    try:
        meta = _baseless_meta(data, hdr)
    except (ValueError, IndexError, struct.error):  # a damaged blob: the release alone
        meta = None
    if meta is not None and meta.build_id and meta.release == release:
        return f"{release} (build ID {meta.build_id})"
    return release


def _baseless_meta(data: bytes, hdr: BtfHeader) -> Optional[VarsMeta]:
    """The identity record of a split BTF read without its base: its string
    offsets are shifted by the base's (unknown) string length, which the
    position of ``BTFVARS_FORMAT`` in the string section gives back."""
    from drgn_btfvars.btf.format import KIND_ELEM_SIZE, KIND_INFO_SIZE

    s0 = hdr.hdr_len + hdr.str_off
    strs = data[s0:s0 + hdr.str_len]
    local = strs.find(b"\0BTFVARS_FORMAT\0")
    if local < 0:
        return None
    local += 1
    fmt = "<" if hdr.byteorder == "little" else ">"
    t0 = hdr.hdr_len + hdr.type_off
    words = struct.unpack_from(f"{fmt}{hdr.type_len // 4}I", data, t0)
    p = 0
    while p + 2 < len(words):  # walk the records; the enum is an ENUM64 (kind 19)
        kind, vlen = (words[p + 1] >> 24) & 0x7F, words[p + 1] & 0xFFFFFF
        if kind not in KIND_INFO_SIZE:
            return None
        if kind == 19:
            ents = words[p + 3:p + 3 + 3 * vlen]
            for j in range(0, len(ents), 3):
                delta = ents[j] - local
                names = []
                for k in range(0, len(ents), 3):
                    o = ents[k] - delta
                    if not 0 <= o < len(strs):
                        break
                    names.append((strs[o:strs.index(b"\0", o)].decode("ascii", "replace"),
                                  ents[k + 1] | ents[k + 2] << 32))
                else:
                    if names and all(n.startswith("BTFVARS_") for n, _ in names):
                        try:
                            return VarsMeta.from_enumerators(names)
                        except VarsMetaError:
                            return None
        p += 3 + KIND_INFO_SIZE[kind] // 4 + vlen * KIND_ELEM_SIZE[kind] // 4
    return None
