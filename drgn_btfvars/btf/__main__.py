"""Command line: look at a BTF file with the reader.

    python3 -m drgn_btfvars.btf dump FILE [-B BASE]...     bpftool-style raw dump
    python3 -m drgn_btfvars.btf counts FILE [-B BASE]...   types per kind
    python3 -m drgn_btfvars.btf validate FILE [-B BASE]... full check (exit 1 on error)
    python3 -m drgn_btfvars.btf find NAME FILE [-B BASE]... ids named NAME in the chain

Several -B give a chain, outermost base first (vmlinux, then a module, ...).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .format import BtfError
from .reader import Btf, accelerated


def _open(path: str, bases: List[str]) -> Btf:
    base: Optional[Btf] = None
    for b in bases:
        with open(b, "rb") as f:
            base = Btf(f.read(), base, name=b)
    with open(path, "rb") as f:
        return Btf(f.read(), base, name=path)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m drgn_btfvars.btf", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["dump", "counts", "validate", "find"])
    ap.add_argument("args", nargs="+", help="FILE, or NAME FILE for find")
    ap.add_argument("-B", "--base", action="append", default=[], help="base BTF (repeatable)")
    a = ap.parse_args(argv)
    try:
        if a.command == "find":
            if len(a.args) != 2:
                ap.error("find needs NAME FILE")
            btf = _open(a.args[1], a.base)
            for i in btf.find_all(a.args[0]):
                print(btf.dump_raw(i).split("\n")[0])
            return 0
        btf = _open(a.args[0], a.base)
        if a.command == "dump":
            for i in btf.ids():
                print(btf.dump_raw(i))
        elif a.command == "counts":
            print(f"# {btf!r}, accelerator {'on' if accelerated() else 'off'}")
            for k, n in btf.kind_counts().items():
                print(f"{k.name:<12} {n}")
            print(f"{'total':<12} {len(btf)}")
        else:
            btf.validate()
            print(f"{a.args[0]}: OK ({len(btf)} types)")
    except BtfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
