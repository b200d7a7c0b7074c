"""Kernel symbols from a System.map or a saved ``/proc/kallsyms``.

drgn reads a dump's kallsyms through the ``SYMBOL(kallsyms_*)`` entries of
VMCOREINFO, which Linux has only since 6.0 (commit 5fd8fea935a1
"vmcoreinfo: include kallsyms symbols"). For an older kernel the symbols
must come from a file:

* a **System.map** (``nm`` output of vmlinux: link addresses; Debian ships
  the real one in the ``-dbg`` package), moved by the dump's KASLR offset;
* a **saved /proc/kallsyms** (already relocated for the boot it was saved
  on; saved as root, else every address reads 0).

Both have the same ``ADDRESS TYPE NAME [module]`` lines. Which one a file
is follows from the addresses themselves: the shift that carries the file's
``_stext`` (or ``init_uts_ns`` before Linux 5.13 added ``_stext`` to
VMCOREINFO) to the dump's must carry every other ``SYMBOL()`` entry of
VMCOREINFO to its value too. A file of another build fails that check and
is refused. Module symbols of the file are ignored: modules are read from
the dump's memory.
"""

import os
from typing import Dict, List, Tuple, Union

from drgn import Symbol, SymbolBinding, SymbolIndex, SymbolKind

__all__ = (
    "SymbolFileError",
    "has_kallsyms",
    "load_symbol_file",
    "no_kallsyms_message",
    "parse_symbol_file",
)

#: VMCOREINFO ``SYMBOL()`` entries whose value is not the symbol's address
#: (kernel/crash_core.c exports the value of these pointers, not where they live).
_VALUE_ENTRIES = frozenset(("mem_section", "vmemmap"))
#: Entries that anchor the shift, in order of preference (``_stext`` since 5.13).
_ANCHORS = ("_stext", "init_uts_ns")
_MAX_FILE = 64 << 20  # a System.map is ~5-15 MB


class SymbolFileError(Exception):
    """A symbol file that cannot be used for this kernel."""


def has_kallsyms(vmcoreinfo: Dict[str, str]) -> bool:
    """Whether VMCOREINFO locates kallsyms (Linux ≥ 6.0)."""
    return "SYMBOL(kallsyms_names)" in vmcoreinfo


def no_kallsyms_message(vmcoreinfo: Dict[str, str]) -> str:
    release = vmcoreinfo.get("OSRELEASE", "this kernel")
    return (f"{release}: this kernel's VMCOREINFO has no kallsyms (added in Linux 6.0, commit "
            "5fd8fea935a1): give a System.map (from the kernel's -dbg package) or a /proc/kallsyms "
            "saved as root on that system, with drgn_btfvars.enable(prog, kallsyms=PATH) or "
            "DRGN_BTFVARS_KALLSYMS=PATH")


def _binding_kind(code: str) -> Tuple[SymbolBinding, SymbolKind]:
    """The binding and kind drgn's own kallsyms loader gives a type letter."""
    low = code.lower()
    if low == "w":
        return SymbolBinding.WEAK, SymbolKind.UNKNOWN
    if low == "v":
        return SymbolBinding.WEAK, SymbolKind.OBJECT
    binding = SymbolBinding.GLOBAL if code.isupper() else SymbolBinding.UNKNOWN
    if low == "t":
        return binding, SymbolKind.FUNC
    if low in "srbgncd":
        return binding, SymbolKind.OBJECT
    return binding, SymbolKind.UNKNOWN


def parse_symbol_file(path: Union[str, "os.PathLike[str]"]) -> List[Tuple[int, str, str]]:
    """``(address, type letter, name)`` of every vmlinux symbol of a
    System.map or saved ``/proc/kallsyms`` (lines naming a ``[module]`` are
    left out).

    :raises SymbolFileError: unreadable, too big, or not such a file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_FILE + 1)
    except OSError as e:
        raise SymbolFileError(f"{path}: {e.strerror or e}") from e
    if len(raw) > _MAX_FILE:
        raise SymbolFileError(f"{path}: larger than {_MAX_FILE} bytes: not a symbol file")
    out: List[Tuple[int, str, str]] = []
    bad = 0
    for line in raw.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) < 3 or len(parts[1]) != 1:
            bad += bool(line.strip())
            continue
        if len(parts) > 3 and parts[3].startswith("["):
            continue  # a module's symbol: the dump's memory has the modules
        try:
            address = int(parts[0], 16)
        except ValueError:
            bad += 1
            continue
        out.append((address, parts[1], parts[2]))
    if not out or bad > len(out) // 10:
        raise SymbolFileError(f"{path}: not a System.map or /proc/kallsyms file "
                              f"({len(out)} symbol lines, {bad} others)")
    return out


def load_symbol_file(path: Union[str, "os.PathLike[str]"],
                     vmcoreinfo: Dict[str, str]) -> Tuple[SymbolIndex, str]:
    """A drgn symbol index of a System.map or saved ``/proc/kallsyms``,
    placed at this kernel's addresses, and a description of what it was.

    Addresses in the kernel half of the address space are shifted so that
    the file agrees with VMCOREINFO; others (x86-64's per-CPU offsets before
    Linux 6.15, absolute values) stay as they are, as in the kernel's own
    kallsyms. Sizes are the gap to the next symbol, as drgn's loader makes them.

    :raises SymbolFileError: if the file cannot be read, or does not belong to
        this kernel build (its addresses disagree with VMCOREINFO).
    """
    syms = parse_symbol_file(path)
    by_name: Dict[str, List[int]] = {}
    for address, _, name in syms:
        by_name.setdefault(name, []).append(address)
    want = {k[7:-1]: int(v, 16) for k, v in vmcoreinfo.items()
            if k.startswith("SYMBOL(") and k.endswith(")") and k[7:-1] not in _VALUE_ENTRIES}
    anchor = next((a for a in _ANCHORS if a in want and len(by_name.get(a, ())) == 1), None)
    if anchor is None:
        raise SymbolFileError(f"{path}: cannot be checked against this kernel: it has none of "
                              f"{', '.join(_ANCHORS)} that VMCOREINFO also gives")
    if all(a == 0 for a, _, _ in syms[:1000]):
        raise SymbolFileError(f"{path}: every address is 0 (a /proc/kallsyms read without "
                              "root, or with kernel.kptr_restrict set)")
    mask = (1 << 64) - 1
    top = 1 << 63
    shift = (want[anchor] - by_name[anchor][0]) & mask
    checked, wrong = [anchor], []
    for name, value in sorted(want.items()):
        if name == anchor or name not in by_name:
            continue
        if any(((a + shift) & mask if a >= top else a) == value for a in by_name[name]):
            checked.append(name)
        else:
            wrong.append(f"{name} {by_name[name][0]:#x}")
    kaslr = int(vmcoreinfo.get("KERNELOFFSET", "0"), 16)
    release = vmcoreinfo.get("OSRELEASE", "?")
    build = f"{release} (build ID {vmcoreinfo.get('BUILD-ID', '?').lower()})"
    if wrong or (len(checked) < 2 and shift not in (0, kaslr)):
        raise SymbolFileError(
            f"{path} is from another kernel build: shifted by {shift:#x} to put {anchor} where "
            f"this kernel {build} has it ({want[anchor]:#x}), "
            + (f"it disagrees with VMCOREINFO on {', '.join(wrong[:4])}"
               if wrong else "nothing else in VMCOREINFO confirms it"))
    if shift == 0:
        how = "a /proc/kallsyms of this boot"
    elif shift == kaslr:
        how = f"link addresses (System.map) + KASLR offset {kaslr:#x}"
    else:
        how = f"a /proc/kallsyms of another boot of this build, moved by {shift:#x}"
    placed = sorted((((a + shift) & mask if a >= top else a), t, n) for a, t, n in syms)
    out = []
    for i, (address, code, name) in enumerate(placed):
        size = placed[i + 1][0] - address if i + 1 < len(placed) else 0
        binding, kind = _binding_kind(code)
        out.append(Symbol(name, address, size, binding, kind))
    return SymbolIndex(out), f"{os.fspath(path)}: {how}; checked {', '.join(checked)}"
