"""Ground truth for weak functions, which the main truth file leaves out.

kallsyms marks a weak function ``W`` and drgn gives such a symbol no kind
(``SymbolKind.UNKNOWN``), so ``truth.json.zst`` (FUNC symbols only) has no
weak functions. The plugin types a weak symbol as a function when it lies in
kernel text. This records, per committed dump, what drgn + DWARF says of each
weak symbol in text: its address (the ``-dbg`` vmlinux's own symbol table
must agree that a function of that name starts there) and its type. When
DWARF's lookup by name gives another address (a discarded weak default keeps
a DWARF entry at a stale address), the address comes from the symbol table
and the prototype from that entry (``address_from_symtab``). A name the
symbol table does not show as a function there is listed as unverifiable.

Usage::

    python3 vmcores/weak.py record [KEY ...]    # needs the -dbg vmlinux

writes ``vmcores/<key>/weak_functions.json.zst``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vmcores import fixtures  # noqa: E402

FILE_NAME = "weak_functions.json.zst"


def weak_text_symbols(prog) -> Dict[str, int]:  # type: ignore[no-untyped-def]
    """name -> address of kallsyms' weak symbols without a kind in vmlinux text."""
    from drgn import SymbolBinding, SymbolKind
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    index = load_vmlinux_kallsyms(prog)
    start = index(prog, "_stext", None, True)[0].address
    end = index(prog, "_etext", None, True)[0].address
    out: Dict[str, int] = {}
    for s in index(prog, None, None, False):
        if (s.binding == SymbolBinding.WEAK and s.kind == SymbolKind.UNKNOWN
                and start <= s.address < end):
            out[s.name] = s.address
    return out


def record(key: str) -> Dict[str, object]:
    import drgn
    import zstandard
    from drgn import SymbolKind

    from vmcores import truth

    vmlinux = fixtures.debug_vmlinux(key)
    if vmlinux is None:
        raise SystemExit(f"{key}: no -dbg vmlinux (python3 vmcores/kernels.py {key} dbg)")
    prog = truth.open_program(fixtures.vmcore_path(key), vmlinux)  # DWARF, no plugins
    verified: Dict[str, Dict[str, object]] = {}
    by_symtab: Dict[str, Dict[str, object]] = {}
    unverifiable: List[str] = []
    for name, address in sorted(weak_text_symbols(prog).items()):
        try:
            elf = prog.symbol(address)
            fn = prog.function(name)
        except (LookupError, drgn.BadDataError):  # drgn 0.3.0 fails on a few DIEs
            unverifiable.append(name)
            continue
        if elf.name != name or elf.address != address or elf.kind != SymbolKind.FUNC:
            unverifiable.append(name)
            continue
        entry = {"address": address, "type": fn.type_.type_name()}
        if fn.address_ == address:
            verified[name] = entry
        else:
            # The ELF symbol table places the function; DWARF's lookup found
            # another entry of that name (the discarded weak default, or a
            # declaration): its prototype is recorded, the address is not its.
            by_symtab[name] = entry
    data = {"key": key, "verified": verified, "address_from_symtab": by_symtab,
            "unverifiable": unverifiable}
    raw = json.dumps(data, indent=0, sort_keys=True).encode()
    (HERE / key / FILE_NAME).write_bytes(zstandard.ZstdCompressor(level=19).compress(raw))
    return data


def load(key: str) -> Optional[Dict[str, object]]:
    """The recorded weak functions of a committed dump, or None."""
    path = HERE / key / FILE_NAME
    if not path.exists():
        return None
    import zstandard

    return json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes()))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record with DWARF (needs the -dbg vmlinux)")
    r.add_argument("keys", nargs="*")
    a = p.parse_args(argv)
    for key in a.keys or fixtures.available():
        data = record(key)
        print(f"{key}: {len(data['verified'])} weak functions verified, "
              f"{len(data['address_from_symtab'])} placed by the symbol table only, "
              f"{len(data['unverifiable'])} unverifiable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
