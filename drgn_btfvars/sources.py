"""Where BTF bytes come from.

Each function returns raw BTF bytes (or a list of them) from one place: a
dump's memory, a live kernel's ``/sys/kernel/btf``, or a file. None of them
converts types; reading the kernel's module list uses drgn objects typed by
whoever the program's type finders are.
"""

import os
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Union

from drgn import FaultError, Object, Program

__all__ = (
    "BtfSourceError",
    "ModuleBtf",
    "read_btf_file",
    "read_vmlinux_btf_from_memory",
    "iter_module_btfs_from_memory",
    "iter_module_btfs_from_sysfs",
    "read_elf_vmcoreinfo",
    "SYSFS_BTF",
)

SYSFS_BTF = Path("/sys/kernel/btf")
# The biggest BTF blob we accept from a dump or a file: real vmlinux BTF is
# ~5 MiB; anything far beyond means a corrupt size field.
MAX_BTF_SIZE = 256 << 20
# Bounds the walk of the kernel's btf_modules list (a corrupt list may cycle).
MAX_MODULES = 65536

_BTF_MAGIC_LE = b"\x9f\xeb"
_BTF_MAGIC_BE = b"\xeb\x9f"


class BtfSourceError(Exception):
    """BTF bytes could not be obtained from a source."""


class ModuleBtf(NamedTuple):
    """A loaded kernel module's BTF, as found in memory or sysfs."""

    name: str
    #: ``struct module *`` of the module (``None`` when live from sysfs).
    module: Optional[Object]
    data: bytes


def read_btf_file(path: Union[str, "os.PathLike[str]"]) -> bytes:
    """Read BTF from a file: raw BTF, or an ELF file's ``.BTF`` section.

    :raises BtfSourceError: if the file holds neither.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4)
            if head[:2] in (_BTF_MAGIC_LE, _BTF_MAGIC_BE):
                f.seek(0)
                data = f.read(MAX_BTF_SIZE + 1)
                if len(data) > MAX_BTF_SIZE:
                    raise BtfSourceError(f"{p}: BTF file is larger than {MAX_BTF_SIZE} bytes")
                return data
            if head == b"\x7fELF":
                return _elf_btf_section(p, f)
    except OSError as e:
        raise BtfSourceError(f"{p}: {e.strerror or e}") from e
    raise BtfSourceError(f"{p}: neither raw BTF nor an ELF file")


def _elf_btf_section(path: Path, f) -> bytes:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            raise BtfSourceError(f"{path}: ELF file has no .BTF section")
        if sec["sh_size"] > MAX_BTF_SIZE:
            raise BtfSourceError(f"{path}: .BTF section is larger than {MAX_BTF_SIZE} bytes")
        data = sec.data()
    except ELFError as e:
        raise BtfSourceError(f"{path}: bad ELF file: {e}") from e
    if len(data) != sec["sh_size"]:
        raise BtfSourceError(f"{path}: .BTF section is truncated")
    return data


def read_vmlinux_btf_from_memory(prog: Program, start: int, stop: int) -> bytes:
    """Read the vmlinux BTF between the ``__start_BTF`` and ``__stop_BTF`` addresses."""
    size = stop - start
    if size <= 0 or size > MAX_BTF_SIZE:
        raise BtfSourceError(
            f"vmlinux BTF bounds {start:#x}..{stop:#x} give an impossible size {size}"
        )
    try:
        return prog.read(start, size)
    except FaultError as e:
        raise BtfSourceError(
            f"vmlinux BTF ({size} bytes at {start:#x}) cannot be read in full: {e}"
        ) from e


def iter_module_btfs_from_memory(btf_modules: Object) -> Iterator[Union[ModuleBtf, BtfSourceError]]:
    """Walk the kernel's ``btf_modules`` list (``kernel/bpf/btf.c``).

    Each entry is a ``struct btf_module`` whose ``btf`` holds the module's
    BTF as the kernel parsed it: ``btf->data`` / ``btf->data_size``, split
    over vmlinux and already relocated. (``module->btf_data`` is freed after
    the module's init and must not be read.)

    Entries that cannot be read are yielded as :class:`BtfSourceError` so
    that one bad module does not hide the others.
    """
    prog = btf_modules.prog_
    head = btf_modules.address_
    if head is None:
        raise BtfSourceError("btf_modules is not an object in memory")
    try:
        node = btf_modules.next.read_()
    except FaultError as e:
        raise BtfSourceError(f"cannot read the btf_modules list head: {e}") from e
    btf_module_ptr = prog.type("struct btf_module *")
    seen = 0
    while node.value_() != head:
        seen += 1
        if seen > MAX_MODULES:
            yield BtfSourceError("btf_modules list is too long or cyclic")
            return
        try:
            entry = Object(prog, btf_module_ptr, node.value_()).read_()
            entry_obj = entry[0].read_()
            node = entry_obj.list.next.read_()
        except FaultError as e:
            yield BtfSourceError(f"cannot read btf_modules entry at {node.value_():#x}: {e}")
            return
        name = "?"
        try:
            mod = entry_obj.module
            name = mod.name.string_().decode("utf-8", "replace")
            btf = entry_obj.btf[0].read_()
            size = btf.data_size.value_()
            if size <= 0 or size > MAX_BTF_SIZE:
                yield BtfSourceError(f"module {name}: BTF size {size} is impossible")
                continue
            data = prog.read(btf.data.value_(), size)
        except FaultError as e:
            yield BtfSourceError(f"module {name}: BTF cannot be read: {e}")
            continue
        yield ModuleBtf(name, mod, data)


def iter_module_btfs_from_sysfs(root: Path = SYSFS_BTF) -> Iterator[Union[ModuleBtf, BtfSourceError]]:
    """The live kernel's module BTFs, ``/sys/kernel/btf/<module>``."""
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        raise BtfSourceError(f"{root}: {e.strerror or e}") from e
    for name in names:
        if name == "vmlinux":
            continue
        try:
            data = (root / name).read_bytes()
        except OSError as e:
            yield BtfSourceError(f"{root / name}: {e.strerror or e}")
            continue
        yield ModuleBtf(name, None, data)


def read_elf_vmcoreinfo(path: str) -> Optional[str]:
    """The ``VMCOREINFO`` note of an ELF core file (a QEMU or kdump ELF vmcore,
    ``/proc/kcore``), or ``None`` (not ELF, no such note, unreadable)."""
    import struct

    try:
        with open(path, "rb") as f:
            ehdr = f.read(64)
            if ehdr[:4] != b"\x7fELF" or ehdr[4] not in (1, 2) or ehdr[5] not in (1, 2):
                return None
            e = "<" if ehdr[5] == 1 else ">"
            if ehdr[4] == 2:
                phoff, = struct.unpack_from(e + "Q", ehdr, 0x20)
                phentsize, phnum = struct.unpack_from(e + "HH", ehdr, 0x36)
                ph = e + "IIQQQQ"  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz
            else:
                phoff, = struct.unpack_from(e + "I", ehdr, 0x1C)
                phentsize, phnum = struct.unpack_from(e + "HH", ehdr, 0x2A)
                ph = e + "IIIII"  # p_type, p_offset, p_vaddr, p_paddr, p_filesz
            f.seek(phoff)
            phdrs = f.read(phentsize * phnum)
            for i in range(phnum):
                fields = struct.unpack_from(ph, phdrs, i * phentsize)
                if fields[0] != 4:  # PT_NOTE
                    continue
                offset, size = (fields[2], fields[5]) if ehdr[4] == 2 else (fields[1], fields[4])
                f.seek(offset)
                notes = f.read(min(size, 1 << 20))
                off = 0
                while off + 12 <= len(notes):
                    namesz, descsz, _ = struct.unpack_from(e + "III", notes, off)
                    off += 12
                    name = notes[off:off + namesz].rstrip(b"\0")
                    off += (namesz + 3) & ~3
                    desc = notes[off:off + descsz]
                    off += (descsz + 3) & ~3
                    if name == b"VMCOREINFO":
                        return desc.rstrip(b"\0").decode("ascii", "replace")
    except (OSError, struct.error):
        return None
    return None
