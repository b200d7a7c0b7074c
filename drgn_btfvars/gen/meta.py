"""The identity and address record of a variable BTF: ``btf_global_variables_meta``.

The variable BTF must travel through the kernel's BTF verifier (it is the
``.BTF`` of a module), so its metadata is plain BTF: **one ENUM64**, unsigned
(kind_flag 0), size 8, named ``btf_global_variables_meta``, the last type of
the variable BTF.  Every enumerator name is a C identifier (the verifier
checks), every value an unsigned 64-bit integer.  Contract, format 1:

``BTFVARS_FORMAT`` = 1
    Version of this contract.
``BTFVARS_BASE_SHA256``
    The first 8 bytes, big-endian, of sha256 of the base (vmlinux) ``.BTF``
    bytes the variable BTF was generated against.  A reader compares it with
    the vmlinux BTF it has (from the dump: ``__start_BTF``..``__stop_BTF``).
``BTFVARS_BASE_LEN``
    Length in bytes of that base BTF.
``BTFVARS_BUILD_ID_0``, ``_1``, ``_2``
    The vmlinux GNU build-id (20 bytes) as three big-endian u64 chunks, the
    last zero-padded (bytes 16..19 in its high half).
``BTFVARS_RELEASE_<hex>`` = 0
    ``<hex>`` is the lower-case hex of the ``uname -r`` bytes (e.g.
    ``6.12.117+deb13-amd64``), so that a refusal can name the build.
``BTFVARS_SECADDR_<n>``
    Link-time start address (ELF ``sh_addr``) of the vmlinux section that the
    n-th DATASEC of this variable BTF describes, n counting DATASECs in
    type-id order from 0.  Variable address = that + VAR's DATASEC offset +
    KASLR offset (per-CPU section: sh_addr is 0 on x86_64, the result is the
    per-CPU offset, as for the symbol).
``BTFVARS_SECNAME_<n>_<hex>`` = 0
    Only when the DATASEC's name matches more than one ELF section (never
    seen on the kernels tried): ``<hex>`` is the hex of the exact section
    name whose address ``SECADDR_<n>`` holds (the first one in the ELF).
``BTFVARS_SYM_<name>``
    Link-time address of symbol ``<name>``, for those of ``_text``,
    ``_stext``, ``_end``, ``__start_BTF``, ``__stop_BTF``, ``btf_modules``,
    ``modules``, ``__per_cpu_offset``, ``__per_cpu_start``, ``__per_cpu_end``
    that exist in the vmlinux, plus one per linker-script alias VAR (below).
    KASLR offset = runtime address of any of them (kallsyms, VMCOREINFO
    ``SYMBOL(_stext)``) − this value.

Linker-script aliases (``jiffies = jiffies_64;`` in the x86 linker script)
have no DWARF variable of their own at an address pahole encodes, so pahole
gives them no VAR.  The generator adds, for each alias of :data:`ALIASES`
whose symbol exists, a VAR (global, allocated) typed as C code sees it
(``jiffies``: ``volatile unsigned long``), in **no** DATASEC (DATASEC entries
may not overlap, and the alias overlaps its target), and a
``BTFVARS_SYM_<alias>`` enumerator with its link-time address.  A reader
gives a VAR outside every DATASEC the address ``BTFVARS_SYM_<name>`` + KASLR
offset (or kallsyms).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from drgn_btfvars.meta import VarsMeta

__all__ = [
    "META_ENUM_NAME",
    "META_FORMAT",
    "BOOTSTRAP_SYMBOLS",
    "ALIASES",
    "VmlinuxInfo",
    "read_vmlinux",
    "meta_enumerators",
    "decode_meta",
]

META_ENUM_NAME = "btf_global_variables_meta"
META_FORMAT = 1

#: Symbols whose link-time address the plugin needs without kallsyms.
BOOTSTRAP_SYMBOLS: Tuple[str, ...] = (
    "_text", "_stext", "_end", "__start_BTF", "__stop_BTF", "btf_modules", "modules",
    "__per_cpu_offset", "__per_cpu_start", "__per_cpu_end",
)

#: Linker-script alias → (its target, the C type as DWARF gives it: qualifiers + INT name).
ALIASES: Dict[str, Tuple[str, Tuple[str, ...], str]] = {
    "jiffies": ("jiffies_64", ("volatile",), "long unsigned int"),
}


class VmlinuxInfo:
    """What the metadata needs from the vmlinux ELF file."""

    def __init__(self) -> None:
        self.build_id: bytes = b""
        self.release: str = ""
        self.sections: List[Tuple[str, int]] = []   # (name, sh_addr) of SHF_ALLOC sections
        self.symbols: Dict[str, int] = {}           # wanted name → link-time address

    def section_addrs(self, name: str) -> List[int]:
        """Link-time addresses of the allocated sections named ``name``."""
        return [a for n, a in self.sections if n == name]


def read_vmlinux(path: Path, extra_symbols: Iterable[str] = ()) -> VmlinuxInfo:
    """Build-id, release, allocated sections and wanted symbols of a vmlinux."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection, SymbolTableSection

    info = VmlinuxInfo()
    want = set(BOOTSTRAP_SYMBOLS) | set(extra_symbols) | {"linux_banner"}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_flags"] & 0x2 and sec["sh_type"] != "SHT_NULL":  # SHF_ALLOC
                info.sections.append((sec.name, sec["sh_addr"]))
            if isinstance(sec, NoteSection) and not info.build_id:
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                        desc = note["n_desc"]
                        info.build_id = bytes.fromhex(desc) if isinstance(desc, str) else desc
                        break
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            found: Dict[str, Tuple[int, int]] = {}
            for sym in symtab.iter_symbols():
                if sym.name in want and sym["st_shndx"] != "SHN_UNDEF":
                    rank = 0 if sym["st_info"]["bind"] == "STB_GLOBAL" else 1
                    if sym.name not in found or rank < found[sym.name][0]:
                        found[sym.name] = (rank, sym["st_value"])
            info.symbols = {n: v for n, (_, v) in found.items()}
        banner = info.symbols.pop("linux_banner", None)
        if banner is not None:
            for sec in elf.iter_sections():
                a, sz = sec["sh_addr"], sec["sh_size"]
                if sec["sh_type"] == "SHT_PROGBITS" and a <= banner < a + sz:
                    data = sec.data()[banner - a:banner - a + 512]
                    m = re.match(rb"Linux version (\S+)", data)
                    if m:
                        info.release = m.group(1).decode()
                    break
    return info


def _hex(s: str) -> str:
    return s.encode().hex()


def meta_enumerators(base_btf: bytes, info: VmlinuxInfo, datasec_names: Sequence[str],
                     alias_symbols: Sequence[str] = ()) -> List[Tuple[str, int]]:
    """The enumerators of ``btf_global_variables_meta``, in order.

    ``datasec_names``: names of the variable BTF's DATASECs in type-id order.
    Raises ``LookupError`` for a DATASEC with no ELF section of that name.
    """
    out: List[Tuple[str, int]] = [("BTFVARS_FORMAT", META_FORMAT)]
    out.append(("BTFVARS_BASE_SHA256", int.from_bytes(hashlib.sha256(base_btf).digest()[:8], "big")))
    out.append(("BTFVARS_BASE_LEN", len(base_btf)))
    bid = info.build_id[:24].ljust(24, b"\0")
    for i in range(3):
        out.append((f"BTFVARS_BUILD_ID_{i}", int.from_bytes(bid[8 * i:8 * i + 8], "big")))
    if info.release:
        out.append((f"BTFVARS_RELEASE_{_hex(info.release)}", 0))
    for n, name in enumerate(datasec_names):
        addrs = info.section_addrs(name)
        if not addrs:
            raise LookupError(f"DATASEC {name!r} has no section of that name in the vmlinux")
        out.append((f"BTFVARS_SECADDR_{n}", addrs[0]))
        if len(addrs) > 1:
            out.append((f"BTFVARS_SECNAME_{n}_{_hex(name)}", 0))
    for name in (*BOOTSTRAP_SYMBOLS, *alias_symbols):
        if name in info.symbols:
            out.append((f"BTFVARS_SYM_{name}", info.symbols[name]))
    return out


def decode_meta(enumerators: Iterable[Tuple[str, int]]) -> Dict[str, object]:
    """Parse enumerators back, as a dictionary (for tests and ``generate``'s
    self-check); the decoding itself is the plugin's
    :meth:`drgn_btfvars.meta.VarsMeta.from_enumerators`."""
    m = VarsMeta.from_enumerators(enumerators)
    d: Dict[str, object] = {
        "format": m.format, "base_sha256": m.base_sha256, "base_len": m.base_len,
        "secaddr": dict(m.section_addresses), "sym": dict(m.symbols),
        "secname": dict(m.section_names), "build_id": m.build_id or bytes(20).hex(),
    }
    if m.release is not None:
        d["release"] = m.release
    return d
