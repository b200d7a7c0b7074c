"""VMCOREINFO read from the core file's ELF note (not through drgn's
``prog["VMCOREINFO"]``, which fixes drgn's ``char`` before BTF can)."""

import struct
from pathlib import Path

import drgn
import pytest

from drgn_btfvars.finders import _vmcoreinfo
from drgn_btfvars.sources import read_elf_vmcoreinfo as _elf_vmcoreinfo_note
from vmcores import fixtures


def test_note_equals_drgns_object(vmcore_path: Path) -> None:
    """On every committed dump, the note gives what drgn's object gives."""
    prog = drgn.Program()
    prog.set_core_dump(str(vmcore_path))
    text = prog["VMCOREINFO"].string_().decode("ascii")
    assert _elf_vmcoreinfo_note(str(vmcore_path)) == text
    assert _vmcoreinfo(prog) == fixtures.vmcoreinfo(vmcore_path)


def _elf_with_note(bits: int, order: str, desc: bytes) -> bytes:
    """A minimal ELF core file: header, one PT_NOTE program header, the notes
    (a foreign note first, then VMCOREINFO)."""
    e = "<" if order == "little" else ">"

    def note(name: bytes, ntype: int, body: bytes) -> bytes:
        n = name + b"\0"
        return (struct.pack(e + "III", len(n), len(body), ntype)
                + n + b"\0" * (-len(n) % 4) + body + b"\0" * (-len(body) % 4))

    notes = note(b"CORE", 1, b"\1" * 12) + note(b"VMCOREINFO", 0, desc)
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "little" else 2, 1])
    ident += b"\0" * (16 - len(ident))
    if bits == 64:
        ehsize, phentsize = 64, 56
        ehdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 4, 183, 1, 0, ehsize, 0, 0,
                                   ehsize, phentsize, 1, 0, 0, 0)
        phdr = struct.pack(e + "IIQQQQQQ", 4, 0, ehsize + phentsize, 0, 0, len(notes), 0, 0)
    else:
        ehsize, phentsize = 52, 32
        ehdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 4, 40, 1, 0, ehsize, 0, 0,
                                   ehsize, phentsize, 1, 0, 0, 0)
        phdr = struct.pack(e + "IIIIIIII", 4, ehsize + phentsize, 0, 0, len(notes), 0, 0, 0)
    assert len(ehdr) == ehsize and len(phdr) == phentsize
    return ehdr + phdr + notes


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("order", ["little", "big"])
def test_note_any_elf_class_and_byte_order(tmp_path: Path, bits: int, order: str) -> None:
    text = "OSRELEASE=6.12.0\nPAGESIZE=4096\nKERNELOFFSET=1f0000\n"
    p = tmp_path / "core"
    p.write_bytes(_elf_with_note(bits, order, text.encode() + b"\0"))
    assert _elf_vmcoreinfo_note(str(p)) == text


def test_note_absent_or_not_elf(tmp_path: Path) -> None:
    p = tmp_path / "core"
    p.write_bytes(b"KDUMP   " + b"\0" * 100)
    assert _elf_vmcoreinfo_note(str(p)) is None
    p.write_bytes(_elf_with_note(64, "little", b"x")[:70])  # truncated program header
    assert _elf_vmcoreinfo_note(str(p)) is None
    assert _elf_vmcoreinfo_note(str(tmp_path / "missing")) is None
