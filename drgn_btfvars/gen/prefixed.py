"""VARs of objects whose symbols the kernel build renames with a prefix (arm64).

Some parts of an arm64 vmlinux are compiled and linked on their own, then
their symbols are renamed with ``objcopy --prefix-symbols`` before the final
link, so that they cannot clash with the kernel proper:

* the KVM nVHE hypervisor, ``__kvm_nvhe_`` (``kvm_nvhe_sym()`` in
  ``arch/arm64/include/asm/hyp_image.h``, since v5.11);
* the position-independent early boot code, ``__pi_``
  (``arch/arm64/kernel/pi/Makefile``);
* the EFI stub, ``__efistub_`` (``drivers/firmware/efi/libstub/Makefile``).

Their DWARF still says ``cur``, ``base``, ``end``, ``regs``, ``kvm_host_sve_max_vl``
…, so pahole names their VARs that way, while kallsyms, System.map and the
kernel's own code call them ``__kvm_nvhe_cur`` and so on.  Left alone, such a
VAR answers a name (``end``) that no kernel symbol has, or shadows the kernel
proper's variable of the same name (``kvm_host_sve_max_vl`` exists in both).

:func:`rename_prefixed` gives each such VAR the name of the symbol at its
address: a VAR whose address holds no symbol of its own name but holds
``<prefix><name>`` is renamed ``<prefix><name>``.  Nothing else changes (same
type ids, same order), so every VAR of a DATASEC then sits on a symbol of its
name.  On x86-64 no VAR needs it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind

__all__ = ["SYMBOL_PREFIXES", "rename_prefixed", "rename_lines"]

#: Prefixes ``objcopy --prefix-symbols`` gives separately linked kernel objects.
SYMBOL_PREFIXES: Tuple[str, ...] = ("__kvm_nvhe_", "__pi_", "__efistub_")


def _vmlinux_names(vmlinux: Path) -> Tuple[Dict[str, int], Dict[int, Set[str]]]:
    """Allocated section name -> first link address, and address -> symbol names."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    secaddr: Dict[str, int] = {}
    names: Dict[int, Set[str]] = defaultdict(set)
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_flags"] & 0x2:  # SHF_ALLOC
                secaddr.setdefault(sec.name, sec["sh_addr"])
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if sym.name and sym["st_shndx"] != "SHN_UNDEF":
                    names[sym["st_value"]].add(sym.name)
    return secaddr, names


def rename_prefixed(raw: bytes, base: Btf, vmlinux: Path) -> Tuple[bytes, Counter]:
    """``raw`` (split BTF over ``base``) with the VARs of prefixed objects renamed.

    Returns the new bytes (``raw`` itself when nothing is renamed) and the
    number of VARs renamed per prefix.
    """
    split = Btf(raw, base, name="variable BTF")
    secaddr, names = _vmlinux_names(vmlinux)
    renamed: Dict[int, str] = {}
    counts: Counter = Counter()
    for ds in split.datasecs():
        if ds < split.first_id:
            continue
        t = split.type(ds)
        start = secaddr.get(t.name)
        if start is None:
            continue
        for s in t.secinfos:
            if s.type < split.first_id or split.kind(s.type) != BtfKind.VAR:
                continue
            name = split.type(s.type).name
            here = names.get(start + s.offset, set())
            if name in here:
                continue
            for p in SYMBOL_PREFIXES:
                if p + name in here:
                    renamed[s.type] = p + name
                    counts[p] += 1
                    break
    if not renamed:
        return raw, counts
    b = BtfBuilder(base)
    for tid in range(split.first_id, split.end_id):
        t = split.type(tid)
        if tid in renamed:
            b.add_var(renamed[tid], t.type, t.linkage)
        else:
            b.add_type(t)
    return b.to_bytes(), counts


def rename_lines(counts: Counter) -> List[str]:
    """A report line for :func:`rename_prefixed`'s counts."""
    if not counts:
        return ["VARs of prefixed objects (arm64 __kvm_nvhe_, __pi_, __efistub_): none"]
    return ["VARs renamed to their prefixed symbol: " + ", ".join(
        f"{n} {p}*" for p, n in sorted(counts.items()))]
