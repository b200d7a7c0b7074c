"""Broken copies of a committed ELF dump, made in place and undone after use.

One scratch copy of a dump is made per kernel (sparse), then each test
changes it and :meth:`ScratchDump.restore` puts it back:

* bytes written at a physical address (corrupt BTF, another build's BTF);
* physical ranges left out of every ``PT_LOAD`` (what ``makedumpfile -d 31``
  does to the pages it excludes: a read there faults);
* a rewritten ``VMCOREINFO`` note (e.g. without the ``kallsyms`` entries a
  kernel older than 6.0 does not write).

Header changes write a whole new program header table after the original
end of the file and point ``e_phoff`` at it; restoring truncates the file
and rewrites the ELF header. Virtual addresses are translated with the page
tables of the untouched dump (``swapper_pg_dir``), page by page.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

PT_LOAD, PT_NOTE = 1, 4
_PHDR = "<IIQQQQQQ"  # type, flags, offset, vaddr, paddr, filesz, memsz, align
PAGE = 4096


class ScratchDump:
    def __init__(self, src: Path, dst: Path) -> None:
        subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True, timeout=600)
        self.path = dst
        with open(dst, "rb") as f:
            self._ehdr = f.read(64)
            assert self._ehdr[:4] == b"\x7fELF" and self._ehdr[4] == 2 and self._ehdr[5] == 1
            phoff, = struct.unpack_from("<Q", self._ehdr, 0x20)
            self._phentsize, phnum = struct.unpack_from("<HH", self._ehdr, 0x36)
            f.seek(phoff)
            table = f.read(self._phentsize * phnum)
        self.phdrs = [list(struct.unpack_from(_PHDR, table, i * self._phentsize))
                      for i in range(phnum)]
        self._size = dst.stat().st_size
        self._undo: List[Tuple[int, bytes]] = []

    # -- bytes --------------------------------------------------------------

    def phys_offset(self, paddr: int) -> int:
        """File offset of a physical address (in the original PT_LOADs)."""
        for p_type, _, off, _, pa, filesz, _, _ in self.phdrs:
            if p_type == PT_LOAD and pa <= paddr < pa + filesz:
                return off + paddr - pa
        raise LookupError(f"physical address {paddr:#x} is not in the dump")

    def read(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def write(self, offset: int, data: bytes) -> None:
        self._undo.append((offset, self.read(offset, len(data))))
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def write_virtual(self, pieces: List[Tuple[int, int, int]], offset: int, data: bytes) -> None:
        """Write ``data`` at byte ``offset`` of a virtual range given as
        ``(vaddr, paddr, length)`` pieces (see :func:`phys_pieces`)."""
        pos = 0
        for _, paddr, length in pieces:
            lo = max(offset, pos)
            hi = min(offset + len(data), pos + length)
            if lo < hi:
                self.write(self.phys_offset(paddr + lo - pos), data[lo - offset:hi - offset])
            pos += length

    # -- headers ------------------------------------------------------------

    def set_phdrs(self, phdrs: List[List[int]]) -> None:
        """Use a new program header table (written after the original end)."""
        table = b"".join(struct.pack(_PHDR, *p) for p in phdrs)
        at = (self._size + 7) & ~7
        with open(self.path, "r+b") as f:
            f.seek(at)
            f.write(table)
            ehdr = bytearray(self._ehdr)
            struct.pack_into("<Q", ehdr, 0x20, at)
            struct.pack_into("<H", ehdr, 0x38, len(phdrs))
            f.seek(0)
            f.write(ehdr)

    def exclude_phys(self, ranges: Iterable[Tuple[int, int]]) -> None:
        """Leave the physical ranges ``[start, end)`` out of every PT_LOAD,
        splitting segments, as makedumpfile leaves out excluded pages."""
        out = []
        cuts = sorted(ranges)
        for ph in self.phdrs:
            if ph[0] != PT_LOAD:
                out.append(list(ph))
                continue
            pieces = [(ph[4], ph[4] + ph[5])]
            for lo, hi in cuts:
                nxt = []
                for a, b in pieces:
                    if hi <= a or lo >= b:
                        nxt.append((a, b))
                        continue
                    if a < lo:
                        nxt.append((a, lo))
                    if hi < b:
                        nxt.append((hi, b))
                pieces = nxt
            for a, b in pieces:
                out.append([PT_LOAD, ph[1], ph[2] + a - ph[4], ph[3] + a - ph[4] if ph[3] else 0,
                            a, b - a, b - a, ph[7]])
        self.set_phdrs(out)

    def edit_vmcoreinfo(self, edit: Callable[[str], str]) -> None:
        """Rewrite the VMCOREINFO note's text (in place when it shrinks)."""
        note_ph = next(p for p in self.phdrs if p[0] == PT_NOTE)
        blob = self.read(note_ph[2], note_ph[5])
        out = b""
        off = 0
        while off + 12 <= len(blob):
            namesz, descsz, ntype = struct.unpack_from("<III", blob, off)
            name = blob[off + 12:off + 12 + namesz]
            dstart = off + 12 + ((namesz + 3) & ~3)
            desc = blob[dstart:dstart + descsz]
            off = dstart + ((descsz + 3) & ~3)
            if name.rstrip(b"\0") == b"VMCOREINFO":
                desc = edit(desc.decode()).encode()
            out += struct.pack("<III", len(name), len(desc), ntype) + name + bytes(-len(name) % 4)
            out += desc + bytes(-len(desc) % 4)
        assert len(out) <= len(blob), "the new note must fit where the old one was"
        self.write(note_ph[2], out + bytes(len(blob) - len(out)))
        self.set_phdrs([p if p is not note_ph else p[:5] + [len(out)] + p[6:]
                        for p in self.phdrs])

    def restore(self) -> None:
        """Undo every change since the copy was made."""
        for offset, data in reversed(self._undo):
            with open(self.path, "r+b") as f:
                f.seek(offset)
                f.write(data)
        self._undo.clear()
        with open(self.path, "r+b") as f:
            f.seek(0)
            f.write(self._ehdr)
            f.truncate(self._size)


def phys_pieces(prog, pgd: int, address: int, size: int) -> List[Tuple[int, int, int]]:
    """``(vaddr, paddr, length)`` pieces of a virtual range, page by page
    (vmalloc'd memory, such as a module's BTF, is not physically contiguous)."""
    from drgn.helpers.linux.mm import _linux_helper_follow_phys as follow_phys

    out = []
    a = address
    end = address + size
    while a < end:
        n = min(end, (a // PAGE + 1) * PAGE) - a
        out.append((a, follow_phys(prog, pgd, a), n))
        a += n
    return out


def pages_of(pieces: List[Tuple[int, int, int]]) -> List[Tuple[int, int]]:
    """The physical pages ``[start, end)`` covering some pieces."""
    return [(p // PAGE * PAGE, p // PAGE * PAGE + PAGE) for _, p, _ in pieces]


class Located:
    """Where things are in one dump (found once with a BTF session on the
    untouched dump; the tests never trust these for what they check)."""

    def __init__(self, path: Path, vmcoreinfo: Dict[str, str]) -> None:
        import drgn

        import drgn_btfvars

        prog = drgn.Program()
        prog.set_core_dump(str(path))
        kb = drgn_btfvars.enable(prog)
        self.pgd = int(vmcoreinfo["SYMBOL(swapper_pg_dir)"], 16)
        start, stop = kb._symbol_address("__start_BTF"), kb._symbol_address("__stop_BTF")
        self.vmlinux_btf = phys_pieces(prog, self.pgd, start, stop - start)
        self.vmlinux_btf_bytes = prog.read(start, stop - start)
        # Each module's btf->data pieces, and where btf->data_size is.
        self.modules: Dict[str, Tuple[List[Tuple[int, int, int]], int, bytes]] = {}
        head = prog["btf_modules"]
        node = head.next
        while node.value_() != head.address_:
            entry = drgn.container_of(node, "struct btf_module", "list")
            name = entry.module.name.string_().decode()
            btf = entry.btf
            size = btf.data_size.value_()
            data = btf.data.value_()
            self.modules[name] = (phys_pieces(prog, self.pgd, data, size),
                                  follow_size(prog, self.pgd, btf.data_size.address_),
                                  prog.read(data, size))
            node = node.next
        self.jiffies_64 = phys_pieces(prog, self.pgd, prog["jiffies_64"].address_, 8)
        self.kb = kb
        self.prog = prog


def follow_size(prog, pgd: int, address: int) -> int:
    from drgn.helpers.linux.mm import _linux_helper_follow_phys as follow_phys

    return follow_phys(prog, pgd, address)


def record_word(btf, type_id: int, word: int) -> int:
    """Byte offset, in a BTF blob, of word ``word`` of a record."""
    i = type_id - btf.first_id
    return btf._type_base + 4 * (btf._offs[i] + word)


def _kernel_part(pcs: List[int]) -> List[int]:
    """PCs up to the first user-space one (what follows is user memory)."""
    out = []
    for pc in pcs:
        if not pc >> 63:
            break
        out.append(pc)
    return out


def dwarf_pcs(truth, pid: int) -> List[int]:
    """The kernel PCs of a task's stack as DWARF unwound them, without its
    inline frames."""
    t = next(t for t in truth["tasks"] if t["pid"] == pid)
    inline = set(t.get("inline", []))
    return _kernel_part([pc for i, pc in enumerate(t["pcs"]) if i not in inline])


def kernel_pcs(prog, pid: int) -> List[int]:
    return _kernel_part([f.pc for f in prog.stack_trace(pid)])


def open_session(path: Path, **kwargs):
    import drgn

    import drgn_btfvars

    prog = drgn.Program()
    prog.set_core_dump(str(path))
    return prog, drgn_btfvars.enable(prog, **kwargs)


def warnings_text(kb) -> str:
    return "\n".join(kb.warnings)


def first(ids: List[int]) -> Optional[int]:
    return ids[0] if ids else None
