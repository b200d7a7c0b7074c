"""drgn finders that chain kallsyms → variable BTF → vmlinux/module BTF.

:class:`KernelBtf` holds, for one program, the BTF objects found so far and
serves drgn's type, object, symbol and debugging-information finder
callbacks. Everything is loaded on first use:

* the vmlinux base BTF, on the first type or object lookup;
* the variable BTF (``btf_global_variables``), on the first variable lookup;
* the module BTFs, when a name is not in vmlinux or the variable BTF, or when
  drgn asks about modules;
* kallsyms, when an address is needed that the BTF cannot give.

A variable's type always comes from its BTF ``VAR`` record (never from a
guess by name); its address comes from the section base plus the ``DATASEC``
offset, or from kallsyms when the name is unambiguous there.
"""

import logging
import os
import re
import threading
from pathlib import Path
from typing import (
    TYPE_CHECKING, Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union,
)

from drgn import (
    FindObjectFlags,
    MainModule,
    Module,
    ModuleFileStatus,
    Object,
    Program,
    ProgramFlags,
    RelocatableModule,
    Symbol,
    SymbolIndex,
    SymbolBinding,
    SymbolKind,
    Type,
    TypeKind,
    TypeKindSet,
)

from drgn_btfvars import sources
from drgn_btfvars.bootstrap import BOOTSTRAP_SYMBOLS, BootstrapCache
from drgn_btfvars.btf import Btf, BtfError, BtfKind, accelerated
from drgn_btfvars.meta import META_ENUM_NAME, RECORD_PREFIX, VarsMeta, VarsMetaError, release_hint
from drgn_btfvars.types import TypeConverter

if TYPE_CHECKING:  # imported when first used: only degraded mode needs it
    from drgn_btfvars.decls import Declarations

__all__ = ("KernelBtf", "BtfVarsError", "FAKE_MODULE_NAME", "vars_search_path")

logger = logging.getLogger("drgn_btfvars")

#: The name of the fake module that carries the variable BTF.
FAKE_MODULE_NAME = "btf_global_variables"

_TYPE_KINDS: Dict[TypeKind, Tuple[BtfKind, ...]] = {
    TypeKind.STRUCT: (BtfKind.STRUCT,),
    TypeKind.UNION: (BtfKind.UNION,),
    TypeKind.ENUM: (BtfKind.ENUM, BtfKind.ENUM64),
    TypeKind.TYPEDEF: (BtfKind.TYPEDEF,),
    TypeKind.INT: (BtfKind.INT,),
    TypeKind.BOOL: (BtfKind.INT,),
    TypeKind.FLOAT: (BtfKind.FLOAT,),
}
_BTF_INT_BOOL = 4

# Globals whose type is fixed by the kernel's source and needed before any
# variable BTF can be found (walking the module BTF list). Each entry is
# checked against DWARF on every kernel under vmcores/ by the tests.
BOOTSTRAP_DECLS: Dict[str, str] = {
    # kernel/bpf/btf.c: static LIST_HEAD(btf_modules);
    "btf_modules": "struct list_head",
    # kernel/module/main.c: LIST_HEAD(modules);
    "modules": "struct list_head",
}


# What drgn asks for while it enumerates the kernel's modules itself: a
# lookup of these must not start another enumeration.
_MODULE_LIST_NAMES = frozenset(("modules", "MOD_TEXT"))

# Variable lookups after which the whole variable BTF is tabled at once. The
# accelerator's table is C arrays beside the name index (~1 ms on 6.12's 33k
# VARs): made at the first lookup. The pure-Python dict costs ~60 ms, against
# ~15 us for each lookup without it: made after 512.
_VAR_TABLE_AFTER = 1 if accelerated() else 512

# FindObjectFlags -> (variable, function, constant): enum.Flag arithmetic costs
# more than the rest of a cached lookup.
_FLAG_PARTS: Dict[FindObjectFlags, Tuple[bool, bool, bool]] = {}


def _int_words(name: str) -> Tuple[str, ...]:
    """A C integer type name in a spelling-independent form: its words
    sorted, without a redundant "int" ("unsigned long" and "long unsigned
    int" are one type; "signed char" and "char" are not)."""
    words = name.split()
    if len(words) > 1 and "int" in words:
        words.remove("int")
    return tuple(sorted(words))


class BtfVarsError(Exception):
    """A BTF source that was found but cannot be used (e.g. another build's)."""


def vars_search_path(release: str, build_id: str) -> List[Path]:
    """Where a variable BTF for a kernel is looked for when the fake module
    is not loaded and none was given (``enable(vars_btf=...)`` or
    ``$DRGN_BTFVARS_VARS``), in order; each may be raw BTF or the
    ``btf_global_variables.ko`` itself, and is used only if its identity
    record matches the kernel:

    1. each directory of ``$DRGN_BTFVARS_PATH`` (colon-separated), then
    2. ``$XDG_DATA_HOME/drgn-btfvars`` (``~/.local/share/drgn-btfvars``), then
    3. ``/usr/lib/drgn-btfvars``,

    and in each directory ``<build-id>.btf``, then
    ``<release>/btf_global_variables.btf`` and
    ``<release>/btf_global_variables.ko``.
    """
    dirs = [Path(d) for d in os.environ.get("DRGN_BTFVARS_PATH", "").split(":") if d]
    xdg = os.environ.get("XDG_DATA_HOME")
    dirs.append((Path(xdg) if xdg else Path.home() / ".local" / "share") / "drgn-btfvars")
    dirs.append(Path("/usr/lib/drgn-btfvars"))
    out = []
    for d in dirs:
        if re.fullmatch(r"[0-9a-fA-F]{8,128}", build_id or ""):
            out.append(d / f"{build_id.lower()}.btf")
        if release and "/" not in release and release not in (".", ".."):
            out.append(d / release / "btf_global_variables.btf")
            out.append(d / release / "btf_global_variables.ko")
    return out


def _list_head_ok(head: Object) -> bool:
    """Whether a ``struct list_head`` looks like a list head (next->prev == head)."""
    try:
        return head.next.prev.value_() == head.address_
    except Exception:
        return False


class _Candidate(NamedTuple):
    btf: Btf
    type_id: int


def _vmcoreinfo(prog: Program) -> Dict[str, str]:
    # Read from the core file's note when it is ELF, not through
    # prog["VMCOREINFO"]: building that object makes drgn look up "char"
    # before our type finder can answer (it needs VMCOREINFO to find the BTF),
    # and drgn keeps its default (signed) char for the program's lifetime,
    # where the kernel's is unsigned on arm64 and on x86 since Linux 6.2
    # (commit 3bc753c06dd0, "kbuild: treat char as always unsigned").
    path = prog.core_dump_path
    raw = sources.read_elf_vmcoreinfo(path) if path else None
    if raw is None:
        try:
            raw = prog["VMCOREINFO"].string_().decode("ascii", "replace")
        except (LookupError, ValueError):
            return {}
    out = {}
    for line in raw.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


#: The VMCOREINFO symbols drgn's builtin kallsyms loader takes, in its order
#: (drgn 0.3.0 ``drgn.helpers.linux.kallsyms._load_builtin_kallsyms``).
_KALLSYMS_VMCOREINFO = ("kallsyms_names", "kallsyms_token_table", "kallsyms_token_index",
                        "kallsyms_num_syms", "kallsyms_offsets", "kallsyms_relative_base",
                        "kallsyms_addresses", "_stext")


def _load_vmlinux_kallsyms(prog: Program, vmcoreinfo: Dict[str, str]) -> SymbolIndex:
    """drgn's ``load_vmlinux_kallsyms``, fed the VMCOREINFO we parsed.

    drgn's helper reads ``prog["VMCOREINFO"]`` itself, which makes drgn fix
    its own "char" for good while our type finder cannot answer (see
    :func:`_vmcoreinfo`); its builtin loader takes the addresses directly.
    """
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    live_root = (prog.flags & (ProgramFlags.IS_LIVE | ProgramFlags.IS_LOCAL)) == (
        ProgramFlags.IS_LIVE | ProgramFlags.IS_LOCAL) and os.geteuid() == 0
    if live_root or not vmcoreinfo:
        return load_vmlinux_kallsyms(prog)  # /proc/kallsyms, or drgn's own VMCOREINFO path
    try:
        from _drgn import _linux_helper_load_builtin_kallsyms
    except ImportError:  # another drgn: its public helper
        return load_vmlinux_kallsyms(prog)
    args = [int(vmcoreinfo.get(f"SYMBOL({s})", "0"), 16) for s in _KALLSYMS_VMCOREINFO]
    return _linux_helper_load_builtin_kallsyms(prog, *args)


class KernelBtf:
    """The BTF view of one kernel program; see the module docstring.

    :param prog: A Linux kernel program (core dump or live).
    :param vmlinux: vmlinux BTF bytes or a file (raw BTF or an ELF with
        ``.BTF``) to use instead of the kernel's own.
    :param vars_btf: variable BTF bytes or file to use instead of the fake
        module's. Defaults to ``$DRGN_BTFVARS_VARS``.
    :param use_fake_module: whether to use ``btf_global_variables`` when it
        is loaded in the kernel (``False`` shows what a stock kernel gives).
    :param kallsyms: a System.map or saved ``/proc/kallsyms`` to take vmlinux
        symbols from instead of the dump's kallsyms, which VMCOREINFO locates
        only since Linux 6.0 (see :mod:`drgn_btfvars.symfile`). Defaults to
        ``$DRGN_BTFVARS_KALLSYMS``.
    """

    def __init__(
        self,
        prog: Program,
        *,
        vmlinux: Union[None, bytes, str, "os.PathLike[str]"] = None,
        vars_btf: Union[None, bytes, str, "os.PathLike[str]"] = None,
        use_fake_module: bool = True,
        kallsyms: Union[None, str, "os.PathLike[str]"] = None,
    ) -> None:
        self.prog = prog
        if kallsyms is None:
            kallsyms = os.environ.get("DRGN_BTFVARS_KALLSYMS") or None
        self._kallsyms_arg = kallsyms
        self._kallsyms_source = ""
        self._vmlinux_arg = vmlinux
        if vars_btf is None:
            vars_btf = os.environ.get("DRGN_BTFVARS_VARS") or None
        self._vars_arg = vars_btf
        self.use_fake_module = use_fake_module
        self._lock = threading.RLock()
        self.converter = TypeConverter(prog, self._complete_fwd)
        self.warnings: List[str] = []

        self._vmlinux: Optional[Btf] = None
        self._vmlinux_bytes: Optional[bytes] = None
        self._vmlinux_error: Optional[Exception] = None
        self._vars: Optional[Btf] = None
        self._vars_meta: Optional[VarsMeta] = None
        self._vars_source = ""
        self._vars_loaded = False
        self._module_btf_raw: Optional[Dict[str, sources.ModuleBtf]] = None
        self._module_btfs: Dict[str, Btf] = {}
        self._added_btfs: List[Btf] = []  # load_btf()
        self._module_btf_errors: Dict[str, str] = {}
        self._loading_modules = False
        self._kallsyms: Optional[SymbolIndex] = None
        self._kallsyms_error: Optional[Exception] = None
        self._loading_kallsyms = False
        self._in_setup = False
        self._modules_created = False
        self._told_no_vars = False
        self._module_kallsyms: Optional[SymbolIndex] = None
        self._loading_module_kallsyms = False
        self._vmcoreinfo: Optional[Dict[str, str]] = None
        self._bootstrap: Optional[BootstrapCache] = None
        self._var_locations: Dict[int, Dict[int, Tuple[int, int, int]]] = {}
        self._datasec_index: Dict[int, Dict[int, Tuple[int, str]]] = {}
        self._var_lookups: Dict[int, int] = {}
        # name -> (address, type id) of the variable BTF's VARs (Btf.var_table);
        # built after _VAR_TABLE_AFTER variable lookups so that each later
        # lookup is one dict access (or one C call).
        self._var_table: Any = None
        # type id -> Type converted from the variable BTF (the converter's own cache).
        self._var_types: Dict[int, Type] = {}
        self._int_spellings: Optional[Dict[Tuple[str, ...], int]] = None
        self._text_range: Optional[Tuple[int, int]] = None
        self._percpu_zero_end: Optional[int] = None  # _zero_based_percpu_end()
        self._var_table_countdown = _VAR_TABLE_AFTER
        self._section_bases: Dict[Tuple[int, int], Optional[int]] = {}
        self._constants: Dict[str, Optional[Object]] = {}
        self._bootstrap_types: Dict[str, Type] = {}

    # ------------------------------------------------------------------
    # Helpers

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            logger.warning("%s", msg)

    @property
    def is_live(self) -> bool:
        return bool(self.prog.flags & ProgramFlags.IS_LIVE)

    def vmcoreinfo(self) -> Dict[str, str]:
        """VMCOREINFO as a dictionary (read once)."""
        if self._vmcoreinfo is None:
            # When drgn builds the VMCOREINFO object (not an ELF core), it uses
            # its own "char" type: our finders stay out of it (they may need
            # VMCOREINFO themselves).
            self._in_setup = True
            try:
                self._vmcoreinfo = _vmcoreinfo(self.prog)
            finally:
                self._in_setup = False
        return self._vmcoreinfo

    def kaslr_offset(self) -> int:
        value = self.vmcoreinfo().get("KERNELOFFSET")
        return int(value, 16) if value else 0

    # ------------------------------------------------------------------
    # kallsyms

    def kallsyms(self) -> Optional[SymbolIndex]:
        """drgn's vmlinux kallsyms index, loaded on first use (``None`` if unavailable)."""
        if self._kallsyms is None and self._kallsyms_error is None and not self._loading_kallsyms:
            # The loader itself looks symbols up (through this finder).
            info = self.vmcoreinfo()
            self._loading_kallsyms = True
            try:
                self._kallsyms = self._load_kallsyms(info)
            except Exception as e:  # drgn raises various errors here
                self._kallsyms_error = e
                self._warn(f"kallsyms unavailable: {e}")
            finally:
                self._loading_kallsyms = False
        return self._kallsyms

    def _load_kallsyms(self, info: Dict[str, str]) -> SymbolIndex:
        """The symbol file given, else drgn's loader (VMCOREINFO, Linux ≥ 6.0;
        /proc/kallsyms when live); a file that does not fit this kernel is
        refused, never used."""
        from drgn_btfvars import symfile

        live = self.is_live
        if self._kallsyms_arg is not None:
            try:
                index, self._kallsyms_source = symfile.load_symbol_file(self._kallsyms_arg, info)
                return index
            except symfile.SymbolFileError as e:
                if not live and not symfile.has_kallsyms(info):
                    raise symfile.SymbolFileError(f"{e}; and {symfile.no_kallsyms_message(info)}")
                self._warn(f"symbol file refused: {e}; using the kernel's own kallsyms")
        if not live and info and not symfile.has_kallsyms(info):
            raise symfile.SymbolFileError(symfile.no_kallsyms_message(info))
        self._kallsyms_source = "/proc/kallsyms" if live else "VMCOREINFO"
        return _load_vmlinux_kallsyms(self.prog, info)

    def module_kallsyms(self) -> Optional[SymbolIndex]:
        if self._module_kallsyms is None and not self._loading_module_kallsyms:
            from drgn.helpers.linux.kallsyms import load_module_kallsyms

            self._loading_module_kallsyms = True
            try:
                self._module_kallsyms = load_module_kallsyms(self.prog)
            except Exception as e:
                self._module_kallsyms = SymbolIndex([])
                self._warn(f"module kallsyms unavailable: {e}")
            finally:
                self._loading_module_kallsyms = False
        return self._module_kallsyms

    def _symbols(self, name: str) -> List[Symbol]:
        index = self.kallsyms()
        if index is None:
            return []
        return list(index(self.prog, name, None, False))

    def bootstrap_cache(self) -> BootstrapCache:
        if self._bootstrap is None:
            info = self.vmcoreinfo()
            self._bootstrap = BootstrapCache(info.get("BUILD-ID", ""), self.kaslr_offset())
            stext = info.get("SYMBOL(_stext)")
            cached = self._bootstrap.address("_stext")
            if stext and cached is not None and cached != int(stext, 16):
                self._bootstrap.forget()  # another build with the same ID?
        return self._bootstrap

    def _bootstrap_address(self, name: str) -> Optional[int]:
        """Address of one of :data:`BOOTSTRAP_SYMBOLS`: from the verified
        variable BTF's records, else the per-build cache, else kallsyms
        (which then fills the cache)."""
        meta = self._vars_meta
        if meta is not None and name in meta.symbols:
            return (meta.symbols[name] + self.kaslr_offset()) & 0xFFFFFFFFFFFFFFFF
        if self._kallsyms is None:
            address = self.bootstrap_cache().address(name)
            if address is not None:
                return address
        address = self._symbol_address(name)
        if self._kallsyms is not None:
            found = {}
            for sym in BOOTSTRAP_SYMBOLS:
                a = self._symbol_address(sym)
                if a is not None:
                    found[sym] = a
            self.bootstrap_cache().store(found)
        return address

    def _bootstrap_failed(self, what: str) -> bool:
        """A cached address failed its check: drop the cache; return whether
        to retry (with kallsyms)."""
        if self._kallsyms is None and self._bootstrap is not None and self._bootstrap.address(what) is not None:
            self._warn(f"cached address of {what} for build {self._bootstrap.build_id} is wrong; "
                       "dropped, using kallsyms")
            self._bootstrap.forget()
            return True
        return False

    def _symbol_address(self, name: str) -> Optional[int]:
        syms = self._symbols(name)
        addrs = {s.address for s in syms}
        return addrs.pop() if len(addrs) == 1 else None

    def symbol_finder(
        self, prog: Program, name: Optional[str], address: Optional[int], one: bool
    ) -> Sequence[Symbol]:
        """Symbol finder: vmlinux kallsyms, then module kallsyms."""
        out: List[Symbol] = []
        index = self.kallsyms()
        if index is not None:
            out.extend(index(prog, name, address, one))
            if address is not None and out and out[0].address < self._zero_based_percpu_end():
                # x86-64 before 6.15 links per-CPU variables at 0: kallsyms
                # lists their offsets, which are not addresses (NULL would
                # print as __per_cpu_start+0x0). drgn with DWARF does not
                # give them for an address either.
                out = [s for s in out if s.address >= self._zero_based_percpu_end()]
            if one and out:
                return out
        if index is not None and not self._loading_modules:
            mindex = self.module_kallsyms()
            if mindex is not None:
                out.extend(mindex(prog, name, address, one))
        return out[:1] if one else out

    def _zero_based_percpu_end(self) -> int:
        """``__per_cpu_end`` when the per-CPU section is linked at 0, else 0."""
        end = self._percpu_zero_end
        if end is None:
            end = 0
            if self._symbol_address("__per_cpu_start") == 0:
                end = self._symbol_address("__per_cpu_end") or 0
            self._percpu_zero_end = end
        return end

    # ------------------------------------------------------------------
    # BTF sources

    def vmlinux(self) -> Optional[Btf]:
        """The vmlinux base BTF (``None`` with a warning if unavailable)."""
        with self._lock:
            if self._vmlinux is None and self._vmlinux_error is None:
                try:
                    try:
                        data = self._read_vmlinux_bytes()
                        btf = Btf(data, name="vmlinux")
                    except (BtfError, sources.BtfSourceError):
                        if not self._bootstrap_failed("__start_BTF"):
                            raise
                        data = self._read_vmlinux_bytes()
                        btf = Btf(data, name="vmlinux")
                    self._vmlinux = btf
                    self._vmlinux_bytes = data
                    self._ensure_main_module()
                    # The variable BTF records the SHA-256 of its build's vmlinux
                    # BTF: check this one against it before any type is used.
                    self.vars()
                except (BtfError, sources.BtfSourceError) as e:
                    self._vmlinux_error = e
                    self._warn(f"vmlinux BTF unavailable: {e}")
            return self._vmlinux

    def _ensure_main_module(self) -> None:
        """Give the kernel's main module its address range, as a vmlinux file
        would: drgn reads the kernel's ORC from memory for stack traces only
        for an address inside the main module. drgn creates that module with
        the VMCOREINFO build ID when it enumerates modules; when we create it
        first, we set the same build ID so that DWARF can still be found."""
        try:
            module = self.prog.main_module()
            created = False
        except LookupError:
            module = self.prog.main_module("kernel", create=True)
            created = True
        if created:
            build_id = self.vmcoreinfo().get("BUILD-ID")
            if build_id:
                try:
                    module.build_id = bytes.fromhex(build_id)
                except ValueError:
                    pass
        if module.address_ranges is None or not module.address_ranges:
            start = self._bootstrap_address("_stext")
            end = self._bootstrap_address("_end")
            if start is not None and end is not None and start < end:
                module.address_range = (start, end)

    def _read_vmlinux_bytes(self) -> bytes:
        arg = self._vmlinux_arg
        if isinstance(arg, (bytes, bytearray, memoryview)):
            return bytes(arg)
        if arg is not None:
            return sources.read_btf_file(arg)
        if self.is_live and (sources.SYSFS_BTF / "vmlinux").exists():
            return sources.read_btf_file(sources.SYSFS_BTF / "vmlinux")
        start = self._bootstrap_address("__start_BTF")
        stop = self._bootstrap_address("__stop_BTF")
        if start is None or stop is None:
            raise sources.BtfSourceError(
                "no __start_BTF/__stop_BTF in kallsyms (is CONFIG_DEBUG_INFO_BTF set?)"
            )
        return sources.read_vmlinux_btf_from_memory(self.prog, start, stop)

    def _module_raw(self) -> Dict[str, sources.ModuleBtf]:
        """Module BTF bytes by module name (read once, parsed on demand)."""
        with self._lock:
            if self._module_btf_raw is not None or self._loading_modules:
                return self._module_btf_raw or {}
            self._loading_modules = True
            found: Dict[str, sources.ModuleBtf] = {}
            try:
                if self.is_live and sources.SYSFS_BTF.is_dir():
                    it = sources.iter_module_btfs_from_sysfs()
                elif self.vmlinux() is None:  # its types are needed to walk the list
                    raise sources.BtfSourceError("not read: there is no vmlinux BTF to read "
                                                 "the kernel's list of module BTFs with")
                else:
                    it = sources.iter_module_btfs_from_memory(self._bootstrap_object("btf_modules"))
                for item in it:
                    if isinstance(item, sources.BtfSourceError):
                        self._warn(str(item))
                    else:
                        found[item.name] = item
            except (sources.BtfSourceError, LookupError) as e:
                self._warn(f"module BTF unavailable: {e}")
            except Exception as e:  # FaultError etc. from a broken dump
                self._warn(f"module BTF unavailable: {type(e).__name__}: {e}")
            finally:
                self._module_btf_raw = found
                self._loading_modules = False
            return found

    def module_btf(self, name: str) -> Optional[Btf]:
        """The parsed BTF of loaded module ``name`` (``None`` if absent or broken)."""
        btf = self._module_btfs.get(name)
        if btf is not None and self._vmlinux is None:
            return None  # its base was found damaged after it was parsed
        if btf is not None or name in self._module_btf_errors:
            return btf
        raw = self._module_raw().get(name)
        vmlinux = self.vmlinux()
        if raw is None or vmlinux is None:
            return None
        try:
            btf = Btf(raw.data, base=vmlinux, name=name)
        except BtfError as e:
            self._module_btf_errors[name] = str(e)
            self._warn(f"module {name}: bad BTF ignored: {e}")
            return None
        self._module_btfs[name] = btf
        return btf

    def module_names(self) -> List[str]:
        """Names of the loaded modules that have BTF (the fake module excluded)."""
        return [n for n in self._module_raw() if n != FAKE_MODULE_NAME]

    def _iter_module_btfs(self) -> Iterator[Btf]:
        for name in self.module_names():
            btf = self.module_btf(name)
            if btf is not None:
                yield btf
        yield from self._added_btfs

    def load_btf(self, data: Union[bytes, str, "os.PathLike[str]"],
                 name: Optional[str] = None) -> Btf:
        """Add BTF that the kernel's own sources do not give: a variable BTF
        (one carrying the ``btf_global_variables_meta`` identity record)
        becomes this program's variable BTF after the same identity checks
        as a found one; any other BTF split on vmlinux (a module's ``.ko``
        or ``.btf``, e.g. of a module loaded after the dump was taken) is
        searched for types after the loaded modules'.

        :param data: BTF bytes, or a raw BTF / ELF file with ``.BTF``.
        :param name: a label for messages (default: the file name).
        :raises BtfVarsError: no vmlinux BTF to split on; a variable BTF
            while one is already in use, or one made for another build.
        :raises BtfError: the BTF is malformed or not split on this vmlinux.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw, source = bytes(data), name or "the BTF given"
        else:
            raw, source = sources.read_btf_file(data), str(data)
        vmlinux = self.vmlinux()
        if vmlinux is None:
            raise BtfVarsError(f"cannot load {source}: this kernel's vmlinux BTF was not found")
        if META_ENUM_NAME.encode() not in raw:
            btf = Btf(raw, base=vmlinux, name=name or Path(source).name)
            btf.check_base()  # split BTF does not name its base: a wrong one gives garbage
            self._added_btfs.append(btf)
            return btf
        if self.vars() is not None:
            raise BtfVarsError(f"cannot load {source}: a variable BTF is already in use "
                               f"(from {self._vars_source})")
        btf, meta = self._open_vars(raw, source, vmlinux)
        with self._lock:
            self._vars, self._vars_meta, self._vars_source = btf, meta, source
            self._var_table = None
            self._var_types = {}
            self._var_table_countdown = _VAR_TABLE_AFTER
            self._constants.clear()
            self._told_no_vars = False
        return btf

    def vars(self) -> Optional[Btf]:
        """The variable BTF, verified against this kernel, or ``None``."""
        with self._lock:
            if not self._vars_loaded:
                self._vars_loaded = True
                try:
                    self._load_vars()
                except BtfVarsError as e:
                    self._vars = None
                    self._vars_meta = None
                    self._warn(str(e))
            return self._vars

    def _load_vars(self) -> None:
        vmlinux = self.vmlinux()
        if vmlinux is None:
            return
        arg = self._vars_arg
        data: Optional[bytes] = None
        if isinstance(arg, (bytes, bytearray, memoryview)):
            data, source = bytes(arg), "the variable BTF given"
        elif arg is not None:
            try:
                data = sources.read_btf_file(arg)
            except sources.BtfSourceError as e:
                raise BtfVarsError(f"variable BTF not used: {e}") from e
            source = str(arg)
        elif self.use_fake_module:
            raw = self._module_raw().get(FAKE_MODULE_NAME)
            if raw is not None:
                data, source = raw.data, f"module {FAKE_MODULE_NAME}"
        if data is None and self.use_fake_module:
            path = self._search_vars_file()
            if path is not None:
                try:
                    data, source = sources.read_btf_file(path), str(path)
                except sources.BtfSourceError as e:
                    raise BtfVarsError(f"variable BTF not used: {e}") from e
        if data is None:
            return
        btf, meta = self._open_vars(data, source, vmlinux)
        self._vars, self._vars_meta, self._vars_source = btf, meta, source

    def _open_vars(self, data: bytes, source: str, vmlinux: Btf) -> Tuple[Btf, VarsMeta]:
        """Parse a variable BTF and check it was made for this kernel build;
        a refusal names both builds."""
        try:
            btf = Btf(data, base=vmlinux, name=FAKE_MODULE_NAME)
            meta = VarsMeta.from_btf(btf)
        except (BtfError, VarsMetaError) as e:
            # Split BTF only parses over the base it was made for: a variable
            # BTF of another build usually fails here. Name both builds.
            theirs = release_hint(data)
            if theirs is not None:
                raise BtfVarsError(
                    f"variable BTF from {source} refused: it was generated for {theirs}, "
                    f"but this kernel is {self._kernel_build()} ({e})"
                ) from e
            raise BtfVarsError(f"variable BTF from {source} not used: {e}") from e
        self._check_build(meta, source)
        return btf, meta

    def _kernel_build(self) -> str:
        info = self.vmcoreinfo()
        return f"{info.get('OSRELEASE', '?')} (build ID {info.get('BUILD-ID', '?').lower()})"

    def _search_vars_file(self) -> Optional[Path]:
        """The first existing file of :func:`vars_search_path` for this kernel."""
        info = self.vmcoreinfo()
        for path in vars_search_path(info.get("OSRELEASE", ""), info.get("BUILD-ID", "")):
            if path.is_file():
                return path
        return None

    def _base_digest(self) -> int:
        """The first 8 bytes (big-endian) of the SHA-256 of the vmlinux BTF
        bytes read: from the per-build cache when bytes of the same length
        and CRC-32 were hashed before (~5 ms less per session), else
        computed (and cached)."""
        import zlib

        data = self._vmlinux_bytes
        assert data is not None
        crc = zlib.crc32(data)
        cache = self.bootstrap_cache() if self._vmlinux_arg is None else None
        digest = cache.base_digest(len(data), crc) if cache is not None else None
        if digest is None:
            import hashlib  # only on a first session of a build, or other bytes

            digest = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
            if cache is not None:
                cache.store_base_digest(len(data), crc, digest)
        return digest

    def _check_build(self, meta: VarsMeta, source: str) -> None:
        assert self._vmlinux_bytes is not None
        kernel_build_id = self.vmcoreinfo().get("BUILD-ID", "").lower()
        theirs = f"{meta.release or '?'} (build ID {meta.build_id or '?'})"
        ours = self._kernel_build()
        if meta.build_id and kernel_build_id and not kernel_build_id.startswith(meta.build_id):
            raise BtfVarsError(
                f"variable BTF from {source} refused: it was generated for {theirs}, "
                f"but this kernel is {ours}"
            )
        digest = self._base_digest()
        if meta.base_sha256 != digest or meta.base_len != len(self._vmlinux_bytes):
            if meta.build_id and kernel_build_id.startswith(meta.build_id) and \
                    self._vmlinux_arg is None:
                # The same build has one vmlinux BTF: the copy read here (or
                # the variable BTF's record of it) is damaged. Nothing is
                # typed from a vmlinux BTF known to be wrong.
                self._vmlinux_error = sources.BtfSourceError(
                    f"vmlinux BTF of {ours} is damaged: {len(self._vmlinux_bytes):,} bytes with "
                    f"SHA-256 {digest:016x}..., where the variable BTF from {source}, made "
                    f"for this build, records {meta.base_len:,} bytes with SHA-256 "
                    f"{meta.base_sha256:016x}...; not used")
                self._vmlinux = None
                self._warn(str(self._vmlinux_error))
                raise BtfVarsError(f"variable BTF from {source} not used: the vmlinux BTF "
                                   "it was made against is not the one read here")
            raise BtfVarsError(
                f"variable BTF from {source} refused: it was generated against another "
                f"vmlinux BTF ({theirs}; this kernel is {ours})"
            )

    # ------------------------------------------------------------------
    # Types

    def _btfs_for_types(self) -> Iterator[Btf]:
        vmlinux = self.vmlinux()
        if vmlinux is None:
            return  # split BTF (modules, variables) means nothing without its base
        yield vmlinux
        if not self._loading_modules:
            v = self.vars()
            if v is not None:
                yield v
            yield from self._iter_module_btfs()

    def _vmlinux_int(self, name: str) -> Optional[_Candidate]:
        """The vmlinux INT type spelled another way: drgn asks for "unsigned
        long", then "long unsigned", ... until one matches BTF's "long
        unsigned int"; each miss would otherwise search every module's BTF."""
        vmlinux = self.vmlinux()
        if vmlinux is None:
            return None
        if self._int_spellings is None:
            self._int_spellings = {}
            for tid in vmlinux.ids_of_kind(BtfKind.INT):
                t = vmlinux.type(tid)
                if not t.int_encoding & _BTF_INT_BOOL:
                    self._int_spellings.setdefault(_int_words(t.name), tid)
        tid = self._int_spellings.get(_int_words(name))
        return None if tid is None else _Candidate(vmlinux, tid)

    def _find_type_id(
        self, name: str, kinds: Sequence[BtfKind], want_bool: Optional[bool]
    ) -> Optional[_Candidate]:
        if want_bool is False and " " in name:
            found = self._vmlinux_int(name)
            if found is not None:
                return found
        for btf in self._btfs_for_types():
            for kind in kinds:
                for type_id in btf.find(name, kind):
                    if want_bool is not None:
                        is_bool = bool(btf.type(type_id).int_encoding & _BTF_INT_BOOL)
                        if is_bool != want_bool:
                            continue
                    return _Candidate(btf, type_id)
        return None

    def type_finder(
        self, prog: Program, kinds: TypeKindSet, name: str, filename: Optional[str]
    ) -> Optional[Type]:
        """drgn type finder callback."""
        if filename or self._loading_kallsyms or self._in_setup:
            return None  # BTF has no file names
        for kind in kinds:
            btf_kinds = _TYPE_KINDS.get(kind)
            if btf_kinds is None:
                continue
            want_bool = None
            if kind == TypeKind.INT:
                want_bool = False
            elif kind == TypeKind.BOOL:
                want_bool = True
            found = self._find_type_id(name, btf_kinds, want_bool)
            if found is not None:
                return self.converter.type(found.btf, found.type_id)
        return None

    def types_named(self, type_name: str) -> List[Type]:
        """Every type BTF defines under a C name such as ``struct dma_chan``,
        ``enum pid_type`` or ``u32`` (a few structure tags have several
        distinct definitions; :meth:`type_finder` returns the first)."""
        kind_word, _, tag = type_name.partition(" ")
        kinds: Tuple[BtfKind, ...]
        if kind_word == "struct":
            kinds, name = (BtfKind.STRUCT,), tag
        elif kind_word == "union":
            kinds, name = (BtfKind.UNION,), tag
        elif kind_word == "enum":
            kinds, name = (BtfKind.ENUM, BtfKind.ENUM64), tag
        else:
            kinds, name = (BtfKind.TYPEDEF, BtfKind.INT, BtfKind.FLOAT), type_name
        out = []
        for btf in self._btfs_for_types():
            for kind in kinds:
                for type_id in btf.find(name, kind):
                    out.append(self.converter.type(btf, type_id))
        return out

    def _complete_fwd(self, owner: Btf, tag: str, is_union: bool) -> Optional[Tuple[Btf, int]]:
        kind = BtfKind.UNION if is_union else BtfKind.STRUCT
        chain: List[Btf] = []
        b: Optional[Btf] = owner
        while b is not None:
            chain.append(b)
            b = b.base
        others = [x for x in self._btfs_for_types() if all(x is not c for c in chain)]
        for btf in chain[::-1] + others:
            ids = btf.find(tag, kind)
            if ids:
                return btf, ids[0]
        return None

    # ------------------------------------------------------------------
    # Objects

    def _bootstrap_object(self, name: str) -> Object:
        """A global needed to find module BTF before any variable BTF is
        known, typed by its fixed declaration (:data:`BOOTSTRAP_DECLS`, which
        the tests check against DWARF on every kernel)."""
        decl = BOOTSTRAP_DECLS[name]
        for _ in range(2):
            address = self._bootstrap_address(name)
            if address is None:
                since = ("; the kernel keeps module BTF since Linux 5.11, commit 36e68442d1af"
                         if name == "btf_modules" else "")
                raise LookupError(f"{name} is not in the kernel's symbols (data symbols need "
                                  f"CONFIG_KALLSYMS_ALL{since})")
            obj = Object(self.prog, self.prog.type(decl), address=address)
            if _list_head_ok(obj) or not self._bootstrap_failed(name):
                return obj
        return obj

    def _datasecs(self, btf: Btf) -> Dict[int, Tuple[int, str]]:
        """DATASEC id -> (index among the object's DATASECs, section name)."""
        index_of = self._datasec_index.get(id(btf))
        if index_of is None:
            index_of = self._datasec_index[id(btf)] = {
                sid: (i, btf.name(sid)) for i, sid in enumerate(btf.datasecs())}
        return index_of

    def _var_location(self, btf: Btf, var_id: int) -> Optional[Tuple[int, str, int]]:
        """(DATASEC index, section name, offset) of a VAR of ``btf``: the
        first few lookups scan the DATASECs' raw entries; after that the
        whole map is built once."""
        key = id(btf)
        index_of = self._datasecs(btf)
        locs = self._var_locations.get(key)
        if locs is None:
            n = self._var_lookups[key] = self._var_lookups.get(key, 0) + 1
            if n > 8:
                locs = self._var_locations[key] = btf.var_locations()
        loc = locs.get(var_id) if locs is not None else btf.var_location(var_id)
        if loc is None:
            return None
        sid, offset, _ = loc
        index, sec_name = index_of[sid]
        return index, sec_name, offset

    def _section_base(self, btf: Btf, index: int, sec_name: str) -> Optional[int]:
        key = (id(btf), index)
        if key in self._section_bases:
            return self._section_bases[key]
        base: Optional[int] = None
        meta = self._vars_meta if btf is self._vars else None
        if meta is not None and index in meta.section_addresses:
            link = meta.section_addresses[index]
            # A zero link address is x86-64's zero-based per-CPU area, whose
            # symbols are absolute (not moved by KASLR).
            base = link + self.kaslr_offset() if link else 0
        else:
            base = self._anchor_section_base(btf, index)
        self._section_bases[key] = base
        return base

    def _anchor_section_base(self, btf: Btf, index: int) -> Optional[int]:
        """Derive a section's base from kallsyms: variables of that DATASEC
        whose names are unique in the BTF and in kallsyms must all agree."""
        sec_id = list(btf.datasecs())[index]
        sec = btf.type(sec_id)
        bases: Dict[int, int] = {}
        tried = 0
        for info in sec.secinfos:
            name = btf.name(info.type)
            if len(btf.find(name, BtfKind.VAR)) != 1:
                continue
            addr = self._symbol_address(name)
            if addr is None:
                continue
            tried += 1
            bases[addr - info.offset] = bases.get(addr - info.offset, 0) + 1
            if tried >= 8:
                break
        if not bases:
            return None
        best, votes = max(bases.items(), key=lambda kv: kv[1])
        if votes * 2 <= tried:
            self._warn(f"section {sec.name}: kallsyms disagrees with the BTF offsets; not used")
            return None
        return best

    def _var_object(self, btf: Btf, var_id: int) -> Optional[Object]:
        loc = self._var_location(btf, var_id)
        address: Optional[int] = None
        if loc is not None:
            index, sec_name, offset = loc
            base = self._section_base(btf, index, sec_name)
            if base is not None:
                address = base + offset
        if address is None:
            address = self._symbol_address(btf.name(var_id))
        if address is None:
            return None
        type_id, _ = btf.var_type(var_id)
        return Object(self.prog, self.converter.type(btf, type_id), address=address)

    def _build_var_table(self, btf: Btf) -> Any:
        """name -> (address, type id) for the VARs of the variable BTF whose
        section link address the identity record gives (an object with a
        ``get`` method); the same choice as :meth:`_find_variable` (the first
        global definition, else the first static). A name whose address
        needs kallsyms is left out (and so takes the ordinary path)."""
        meta = self._vars_meta
        bases: List[Optional[int]] = []
        for index, sec_name in sorted(self._datasecs(btf).values()):
            if meta is None or index not in meta.section_addresses:
                bases.append(None)
            else:
                bases.append(self._section_base(btf, index, sec_name))
        return btf.var_table(bases)

    def _find_variable(self, name: str) -> Optional[Object]:
        table = self._var_table
        if table is not None:
            hit = table.get(name)
            if hit is not None:
                return Object(self.prog, self.converter.type(self._vars, hit[1]),  # type: ignore[arg-type]
                              address=hit[0])
        elif not self._loading_modules:
            self._var_table_countdown -= 1
            if self._var_table_countdown <= 0 and self.vars() is not None:
                self._var_types = self.converter.converted(self.vars())  # type: ignore[arg-type]
                self._var_table = self._build_var_table(self.vars())  # type: ignore[arg-type]
                return self._find_variable(name)
        for btf in self._btfs_for_vars():
            ids = btf.find(name, BtfKind.VAR)
            if not ids:
                continue
            if len(ids) > 1:
                # Prefer a global definition over same-named statics.
                ids = sorted(ids, key=lambda i: btf.var_type(i)[1] == 0)
            obj = self._var_object(btf, ids[0])
            if obj is not None:
                return obj
        if not self._loading_modules and self.vars() is None:
            if name in BOOTSTRAP_DECLS:
                try:
                    return self._bootstrap_object(name)
                except LookupError:
                    return None
            declared = self.declarations().object(name)
            if declared is not None:
                return declared
            if not self._told_no_vars and self.vmlinux() is not None:
                self._told_no_vars = True
                logger.warning(
                    "no variable BTF for %s: only per-CPU variables, functions "
                    "and constants have types (load btf_global_variables.ko, or make a "
                    "variable BTF with 'drgn-btfvars generate'; see README)",
                    self._kernel_build())
        return None

    def variables(self, name: str) -> List[Object]:
        """Every variable BTF gives for ``name`` (same-named statics give
        several), variable BTF first, then vmlinux (per-CPU variables)."""
        out = []
        for btf in self._btfs_for_vars():
            for var_id in btf.find(name, BtfKind.VAR):
                obj = self._var_object(btf, var_id)
                if obj is not None:
                    out.append(obj)
        return out

    def _btfs_for_vars(self) -> Iterator[Btf]:
        if not self._loading_modules:
            v = self.vars()
            if v is not None:
                yield v
        vmlinux = self.vmlinux()
        if vmlinux is not None:
            yield vmlinux

    def _find_function(self, name: str) -> Optional[Object]:
        """A function: its BTF ``FUNC`` prototype at its kallsyms address.

        pahole encodes one ``FUNC`` per name. When kallsyms has several
        functions of that name (statics in different files), nothing tells
        which one the prototype describes, so none is returned; nor for a
        name the variable BTF lists as having another function's prototype.
        """
        if self.vars() is not None and name in self._vars_meta.bad_protos:
            return None
        for btf in self._btfs_for_types():
            ids = btf.find(name, BtfKind.FUNC)
            if not ids:
                continue
            types = [self.converter.type(btf, i) for i in ids]
            if any(t.type_name() != types[0].type_name() for t in types[1:]):
                return None  # same-named statics with different prototypes
            addrs = {s.address for s in self.symbol_finder(self.prog, name, None, False)
                     if s.kind == SymbolKind.FUNC or (
                         s.binding == SymbolBinding.WEAK and s.kind == SymbolKind.UNKNOWN
                         and self._in_kernel_text(s.address))}
            if len(addrs) != 1:
                return None
            return Object(self.prog, types[0], address=addrs.pop())
        return None

    def _in_kernel_text(self, address: int) -> bool:
        """Whether ``address`` is in vmlinux's text (``_stext``..``_etext``):
        kallsyms gives weak functions (``W``) no kind, and only their section
        tells them from weak data."""
        if self._text_range is None:
            start, end = self._symbol_address("_stext"), self._symbol_address("_etext")
            self._text_range = (start, end) if start is not None and end is not None else (0, 0)
        return self._text_range[0] <= address < self._text_range[1]

    def _find_constant(self, name: str) -> Optional[Object]:
        """An enumerator: vmlinux first, then the variable BTF, then modules
        (whose BTF is only read if the name is nowhere else)."""
        if name in self._constants:
            return self._constants[name]
        obj = None
        for btf in self._btfs_for_types():
            for type_id, index in btf.find_enumerator(name):
                t = btf.type(type_id)
                if btf is self._vars and t.name.startswith(RECORD_PREFIX):
                    continue  # our records, not kernel constants
                obj = Object(self.prog, self.converter.type(btf, type_id),
                             value=t.enumerators[index].value)
                break
            if obj is not None:
                break
        if not self._loading_modules:
            self._constants[name] = obj
        return obj

    def object_finder(
        self, prog: Program, name: str, flags: FindObjectFlags, filename: Optional[str]
    ) -> Optional[Object]:
        """drgn object finder callback."""
        if self._loading_kallsyms or self._in_setup:
            return None  # drgn's kallsyms loader asks for its own globals
        table = self._var_table
        if table is not None and self._modules_created:
            # The common case, inlined (a sweep spends most of its time in
            # these calls): a variable the table holds.
            wanted = _FLAG_PARTS.get(flags)
            if wanted is not None and wanted[0]:
                hit = table.get(name)
                if hit is not None:
                    t = self._var_types.get(hit[1])
                    if t is not None:
                        return Object(prog, t, address=hit[0])
                    try:
                        return Object(prog, self.converter.type(self._vars, hit[1]),
                                      address=hit[0])
                    except BtfError:
                        pass  # the ordinary path says what
        obj = self._find_object(name, flags)
        if obj is not None and not self._modules_created and name not in _MODULE_LIST_NAMES:
            self._create_modules()
        return obj

    def _create_modules(self) -> None:
        """Have drgn create its Module objects for the loaded kernel modules
        (as ``load_default_debug_info()`` would): their address ranges and
        section addresses are what drgn needs to read each module's ORC for
        stack traces through module code."""
        self._modules_created = True
        try:
            if any(isinstance(m, RelocatableModule) for m in self.prog.modules()):
                return  # drgn enumerated them already (program_from_core_dump does)
            for _ in self.prog.loaded_modules():
                pass
        except Exception as e:  # a broken module list must not break lookups
            self._warn(f"cannot enumerate kernel modules: {e}")

    def _find_object(self, name: str, flags: FindObjectFlags) -> Optional[Object]:
        wanted = _FLAG_PARTS.get(flags)
        if wanted is None:
            wanted = _FLAG_PARTS[flags] = (bool(flags & FindObjectFlags.VARIABLE),
                                           bool(flags & FindObjectFlags.FUNCTION),
                                           bool(flags & FindObjectFlags.CONSTANT))
        variable, function, constant = wanted
        try:
            if variable:
                obj = self._find_variable(name)
                if obj is not None:
                    return obj
            if function:
                obj = self._find_function(name)
                if obj is not None:
                    return obj
            if constant:
                obj = self._find_constant(name)
                if obj is not None:
                    return obj
        except BtfError as e:
            self._warn(f"lookup of {name!r} failed: {e}")
        return None

    # ------------------------------------------------------------------
    # Status

    def declarations(self) -> "Declarations":
        """Degraded mode: the table of declarations of the globals drgn's
        helpers need, applied to this kernel (used only without a variable
        BTF; see :mod:`drgn_btfvars.decls`)."""
        d = self.__dict__.get("_declarations")
        if d is None:
            from drgn_btfvars.decls import Declarations

            d = self._declarations = Declarations(self)
        return d

    def status(self) -> Dict[str, object]:
        """What was found, as a dictionary (loads what is not loaded yet)."""
        vmlinux = self.vmlinux()
        v = self.vars()
        mods = self.module_names()
        meta = self._vars_meta
        out: Dict[str, object] = {
            "kernel": self._kernel_build(),
            "vmlinux_btf": None if vmlinux is None else {
                "source": self._vmlinux_source(),
                "bytes": len(vmlinux.data), "types": len(vmlinux),
                "percpu_vars": sum(1 for _ in vmlinux.vars())},
            "variable_btf": None if v is None else {
                "source": self._vars_source, "bytes": len(v.data), "types": len(v),
                "vars": sum(1 for _ in v.vars()),
                # _check_build() refused any other build's: these match.
                "release": meta.release if meta else None,
                "build_id": meta.build_id if meta else None,
                "refused_prototypes": len(meta.bad_protos) if meta else 0},
            "declarations": self.declarations().summary() if v is None and vmlinux else None,
            "module_btfs": {n: len(self._module_raw()[n].data) for n in mods},
            "kallsyms": "not loaded" if self._kallsyms is None and self._kallsyms_error is None
            else ("error: " + str(self._kallsyms_error) if self._kallsyms_error else
                  f"loaded from {self._kallsyms_source}, "
                  f"{len(self._kallsyms(self.prog, None, None, False)):,} symbols"),
            "bootstrap_cache": str(self.bootstrap_cache().path)
            if self.bootstrap_cache().enabled else "disabled",
            "warnings": list(self.warnings),
        }
        return out

    def _vmlinux_source(self) -> str:
        """Where the vmlinux BTF comes from (as :meth:`_read_vmlinux_bytes` chooses)."""
        arg = self._vmlinux_arg
        if isinstance(arg, (bytes, bytearray, memoryview)):
            return "bytes given to enable()"
        if arg is not None:
            return str(arg)
        if self.is_live and (sources.SYSFS_BTF / "vmlinux").exists():
            return str(sources.SYSFS_BTF / "vmlinux")
        return "kernel memory (__start_BTF..__stop_BTF)"

    def __repr__(self) -> str:
        try:
            release = self.vmcoreinfo().get("OSRELEASE", "?")
        except Exception:  # a repr must not fail
            release = "?"
        state = "variable BTF" if self._vars is not None else (
            "not loaded yet" if not self._vars_loaded else "stock (no variable BTF)")
        return f"<KernelBtf {release}: {state}>"

    def status_text(self) -> str:
        """:meth:`status` for people."""
        st = self.status()
        lines = [f"drgn-btfvars: {st['kernel']}"]
        vm = st["vmlinux_btf"]
        lines.append("  vmlinux BTF:  " + ("MISSING" if vm is None else
                     f"{vm['bytes']:,} bytes, {vm['types']:,} types, {vm['percpu_vars']} per-CPU variables"
                     f" from {vm['source']}"))
        vb = st["variable_btf"]
        lines.append("  variable BTF: " + ("none (stock kernel: per-CPU variables, functions and "
                                           "constants only)" if vb is None else
                     f"{vb['vars']:,} variables, {vb['types']:,} types, {vb['bytes']:,} bytes "
                     f"from {vb['source']}"))
        if vb is not None:
            lines.append(f"                made for {vb['release']} (build ID {vb['build_id']}): "
                         "matches this kernel")
        dc = st["declarations"]
        if isinstance(dc, dict):
            lines.append(f"  declarations: {dc['typed']} of {dc['entries']} apply to this kernel "
                         "(degraded mode: globals drgn's helpers need, typed from BTF type names; "
                         f"{len(dc['skipped'])} skipped)")
        mb = st["module_btfs"]
        lines.append(f"  module BTF:   {len(mb)} modules" + (f" ({', '.join(sorted(mb))})" if mb else ""))
        lines.append(f"  kallsyms:     {st['kallsyms']}")
        for w in st["warnings"]:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    # ------------------------------------------------------------------
    # Debugging information

    def debug_info_finder(self, modules: Sequence[Module]) -> None:
        """Mark what BTF covers as not needing DWARF, and give the main
        module the address range ORC and symbolization need."""
        for module in modules:
            if isinstance(module, MainModule):
                self._ensure_main_module()
                if self.vmlinux() is not None and module.wants_debug_file():
                    module.debug_file_status = ModuleFileStatus.DONT_NEED
                if module.wants_loaded_file():
                    module.loaded_file_status = ModuleFileStatus.DONT_NEED
            elif isinstance(module, RelocatableModule):
                if module.name == FAKE_MODULE_NAME or self.module_btf(module.name) is not None:
                    if module.wants_debug_file():
                        module.debug_file_status = ModuleFileStatus.DONT_NEED
                    if module.wants_loaded_file():
                        module.loaded_file_status = ModuleFileStatus.DONT_NEED
