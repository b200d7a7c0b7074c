"""DWARF ground truth for a vmcore: what drgn sees with the ``-dbg`` vmlinux.

Usage::

    python3 vmcores/truth.py generate <key> <vmcore> [-o truth.json.zst] [--vmlinux PATH]
                                                     [--summary summary.json]
    python3 vmcores/truth.py summary <truth.json.zst>

Our own plugin is never loaded (``DRGN_DISABLE_PLUGINS='*'`` is set before the
first program is made; drgn loads plugins lazily), so the truth comes from DWARF alone.  The output is one compact
JSON object, zstd-compressed:

``kernel``
    ``key, release, version`` (UTS version), ``arch``, ``build_id`` (hex),
    ``kaslr_offset``, ``vmlinux_btf_sha256`` / ``vmlinux_btf_size`` (the vmlinux
    file's ``.BTF`` section), ``vmlinux_btf_in_memory_sha256`` (``__start_BTF`` ..
    ``__stop_BTF`` read from the dump), ``modules_btf`` (module name -> sha256 of
    its in-memory ``btf->data``), ``sections`` (name -> [start, end) used to
    classify symbols).
``variables``
    ``[{name, address, section, type, size, value}]`` for every kallsyms data
    symbol that DWARF resolves at the same address.  ``section`` is one of
    ``data bss rodata percpu init other`` (by address range); ``type`` is
    ``type_name()``; ``size`` is ``sizeof`` or null; ``value`` is the number for
    scalars (int, bool, enum, float, pointer) or null; per-CPU variables have
    ``value`` null and, for scalars, ``percpu_values``: one value per possible
    CPU (``per_cpu(var, cpu)``).  A variable whose type is
    an anonymous struct/union/enum (possibly in arrays) also has ``layout``, the
    inline description of that type (see ``types``).  ``repeated: true`` marks
    names shared by several kallsyms data symbols (statics of different files:
    the row is the one DWARF resolved, at its own address).  When DWARF answered
    with a declaration of an incomplete array (``const char []``), the length is
    taken from the debug vmlinux's ELF symbol size and ``completed_from_symtab:
    true`` is set.
``data_symbols_unresolved``
    names of kallsyms data symbols that DWARF did not resolve at their address.
``functions``
    ``{name: type_name}`` for kallsyms function symbols DWARF resolves at the
    same address (for a name defined more than once, the lowest address's).
``functions_duplicates``
    ``{name: [[address, type_name], ...]}`` for names with several resolved
    definitions (static functions of different files).
``function_names_repeated``
    names shared by several kallsyms function symbols (whatever DWARF resolved).
``types``
    ``{type_name: {kind, size, members}}`` for every named struct/union reached
    from the variables and functions (through pointers, arrays, typedefs,
    members, parameters); ``members`` is a list of ``[name|null, bit_offset,
    bit_field_size|null, type_name]``, with a fifth element, the inline layout,
    when the member's type is an anonymous struct/union/enum (``{kind, size,
    members}`` or ``{kind: "enum", compatible, enumerators}``).
``typedefs``
    ``{name: target type_name}``, or the inline layout when the target is anonymous.
``enums``
    ``{type_name: {compatible, enumerators: [[name, value], ...]}}`` (named enums).
``type_name_conflicts``
    struct/union names with definitions of different sizes (the first one seen is kept).
``tasks``
    ``[{pid, comm, state, cpu, frames, pcs, inline}]``: ``frames`` are the function
    names of ``prog.stack_trace(task)``, ``pcs`` their program counters, ``inline``
    the indices of inline frames; a failing trace gives ``frames_error``.
``modules``
    ``[{name, base, size, regions}]``.
``helpers``
    ``{name: output string}``: uname, saved_command_line, dmesg tail, mounts, slab
    caches, runqueues nr_running, totalram_pages, nr_cpu_ids, __per_cpu_offset.
``base_types``
    ``{name: [size, signed]}`` for ``char``, ``int``, ``long int`` … as DWARF
    defines them (``char`` is unsigned on arm64, and on x86 since 6.2).
``counts``
    summary numbers (kallsyms symbols, data symbols, resolved, functions, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import drgn
from drgn import Object, Program, SymbolKind, Type, TypeKind

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kernels  # noqa: E402

FORMAT_VERSION = 1

# Section boundary symbols, by class; (start, end) pairs looked up in kallsyms.
SECTION_BOUNDS: Tuple[Tuple[str, str, str], ...] = (
    ("percpu", "__per_cpu_start", "__per_cpu_end"),
    ("rodata", "__start_rodata", "__end_rodata"),
    ("data", "_sdata", "_edata"),
    ("init", "__init_begin", "__init_end"),
    ("bss", "__bss_start", "__bss_stop"),
)
DATA_CLASSES = ("percpu", "rodata", "data", "bss")
SCALAR_KINDS = (TypeKind.INT, TypeKind.BOOL, TypeKind.ENUM, TypeKind.FLOAT, TypeKind.POINTER)


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[truth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- program

def no_plugins() -> None:
    """Make sure no drgn plugin (ours included) can touch the programs made here."""
    os.environ["DRGN_DISABLE_PLUGINS"] = "*"
    try:
        from _drgn_util import plugins
    except ImportError:
        return
    if getattr(plugins, "_plugins", None):
        raise RuntimeError("drgn plugins are already loaded in this process; "
                           "run truth.py in a process of its own")


def open_program(vmcore: Path, vmlinux: Optional[Path]) -> Program:
    """A drgn program on the dump, with the vmlinux DWARF loaded (no modules' debug info)."""
    no_plugins()
    prog = Program()
    prog.set_core_dump(str(vmcore))
    if vmlinux is not None:
        prog.load_debug_info([str(vmlinux)])
    return prog


def elf_section(path: Path, name: str) -> Optional[bytes]:
    """The bytes of an ELF file's section (pyelftools), or None."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return None if sec is None else sec.data()


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def string(obj: Object) -> str:
    """A C string object as text."""
    return obj.string_().decode(errors="replace")


# --------------------------------------------------------------------------- symbols

class Sections:
    """Classifies an address by the section range it falls in."""

    def __init__(self, addr: Dict[str, int]) -> None:
        self.ranges: List[Tuple[str, int, int]] = []
        for cls, start, end in SECTION_BOUNDS:
            if start in addr and end in addr:
                self.ranges.append((cls, addr[start], addr[end]))

    def classify(self, address: int) -> str:
        for cls, lo, hi in self.ranges:
            if lo <= address < hi:
                return cls
        return "other"

    def as_dict(self) -> Dict[str, List[int]]:
        return {cls: [lo, hi] for cls, lo, hi in self.ranges}


def first_symbol(index: drgn.SymbolIndex, prog: Program, name: str) -> Optional[int]:
    """The address of a (unique) symbol in the index, or None."""
    found = index(prog, name, None, True)
    return found[0].address if found else None


def scalar_value(obj: Object) -> Any:
    """The numeric value of a scalar object, else None (also when the read faults)."""
    t = obj.type_
    while t.kind == TypeKind.TYPEDEF:
        t = t.type
    if t.kind not in SCALAR_KINDS:
        return None
    try:
        v = obj.value_()
    except drgn.FaultError:
        return None
    except Exception:  # noqa: BLE001 - e.g. unreadable bit fields; the truth just has no value
        return None
    if isinstance(v, bool):
        return int(v)
    return v


def complete_array(prog: Program, t: Type, address: int) -> Optional[Type]:
    """The complete array type for a variable DWARF gave as an incomplete array.

    drgn sometimes answers a name with a declaration (``extern const char
    linux_banner[];``).  The definition's length is the debug vmlinux's ELF
    symbol size divided by the element size.
    """
    u = t.unqualified()
    if u.kind != TypeKind.ARRAY or u.length is not None:
        return None
    elem = type_size(u.type)
    if not elem:
        return None
    try:
        sym = prog.symbol(address)
    except LookupError:
        return None
    if sym.address != address or not sym.size or sym.size % elem:
        return None
    return prog.array_type(u.type, sym.size // elem, qualifiers=t.qualifiers)


def percpu_values(obj: Object, cpus: List[int]) -> Optional[List[Any]]:
    """Each possible CPU's value of a scalar per-CPU variable (None if not a scalar)."""
    from drgn.helpers.linux.percpu import per_cpu

    t = obj.type_
    while t.kind == TypeKind.TYPEDEF:
        t = t.type
    if t.kind not in SCALAR_KINDS:
        return None
    return [scalar_value(per_cpu(obj, cpu)) for cpu in cpus]


def type_size(t: Type) -> Optional[int]:
    """``sizeof(t)`` or None (incomplete types, functions, void)."""
    try:
        return drgn.sizeof(t)
    except Exception:  # noqa: BLE001
        return None


def resolve_functions(prog: Program, name: str, syms: List[drgn.Symbol],
                      errors: Dict[str, str]) -> List[Tuple[int, Object]]:
    """DWARF functions named ``name`` at the addresses of ``syms``, sorted by address.

    ``prog.function(name)`` picks one definition arbitrarily when several CUs
    define the name; the source file of each symbol's address (from the line
    table) is then used to ask for that file's definition.
    """
    found: Dict[int, Object] = {}
    addrs = {s.address for s in syms}
    try:
        f = prog.function(name)
        if f.address_ in addrs:
            found[f.address_] = f
    except LookupError:
        return []  # DWARF defines no function of that name at all
    except Exception as e:  # noqa: BLE001 - e.g. "unknown DWARF type tag 0x3b" (asm functions)
        errors[name] = f"{type(e).__name__}: {e}"
        return []
    for a in sorted(addrs - set(found)):
        try:
            locs = prog.source_location(a)
            if not len(locs):
                continue
            f = prog.function(name, locs[len(locs) - 1].filename)
        except Exception:  # noqa: BLE001 - no line info, or no definition in that file
            continue
        if f.address_ == a:
            found[a] = f
    return sorted(found.items())


# --------------------------------------------------------------------------- types

class TypeCollector:
    """Collects the layouts of the structs, unions, enums and typedefs reachable from types."""

    def __init__(self) -> None:
        self.types: Dict[str, Dict[str, Any]] = {}
        self.enums: Dict[str, Dict[str, Any]] = {}
        self.typedefs: Dict[str, Any] = {}
        self.conflicts: set = set()
        self._stack: List[Type] = []

    @staticmethod
    def _is_anonymous(t: Type) -> bool:
        return t.kind in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.CLASS, TypeKind.ENUM) and t.tag is None

    def add(self, t: Type) -> None:
        """Queue a type and everything it reaches."""
        self._stack.append(t)
        self._drain()

    def layout(self, t: Type) -> Dict[str, Any]:
        """The description of a struct/union/enum (named or not), queueing what it reaches."""
        if t.kind == TypeKind.ENUM:
            compat = t.type.type_name() if t.type is not None else None
            return {"kind": "enum", "compatible": compat,
                    "enumerators": [[e.name, e.value] for e in (t.enumerators or ())]}
        if not t.is_complete():
            return {"kind": t.kind.name.lower(), "size": None, "members": None}
        members = []
        for m in t.members:
            mt = m.type
            row: List[Any] = [m.name, m.bit_offset, m.bit_field_size, mt.type_name()]
            inner = mt.unqualified()
            if self._is_anonymous(inner):
                row.append(self.layout(inner))
            else:
                self._stack.append(mt)
            members.append(row)
        return {"kind": t.kind.name.lower(), "size": t.size, "members": members}

    def _drain(self) -> None:
        # Named types are walked once per name (the first complete definition wins):
        # DWARF repeats every struct in each compilation unit, and walking every
        # copy explodes in time and memory.
        while self._stack:
            t = self._stack.pop()
            while True:
                t = t.unqualified()
                if t.kind in (TypeKind.POINTER, TypeKind.ARRAY):
                    t = t.type
                    continue
                break
            if t.kind == TypeKind.TYPEDEF:
                if t.name in self.typedefs:
                    continue
                target = t.type
                inner = target.unqualified()
                if self._is_anonymous(inner):
                    self.typedefs[t.name] = self.layout(inner)
                else:
                    self.typedefs[t.name] = target.type_name()
                    self._stack.append(target)
            elif t.kind == TypeKind.FUNCTION:
                self._stack.append(t.type)
                for p in t.parameters:
                    try:
                        self._stack.append(p.type)
                    except Exception:  # noqa: BLE001
                        pass
            elif t.kind in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.CLASS):
                if t.tag is None:
                    continue  # anonymous ones are described inline where they are used
                name = t.type_name()
                old = self.types.get(name)
                if old is not None and (old["members"] is not None or not t.is_complete()):
                    if old["members"] is not None and t.is_complete() and t.size != old["size"]:
                        self.conflicts.add(name)  # same name, different definitions
                    continue
                self.types[name] = self.layout(t)
            elif t.kind == TypeKind.ENUM:
                if t.tag is None:
                    continue
                name = t.type_name()
                if name in self.enums:
                    continue
                d = self.layout(t)
                del d["kind"]
                self.enums[name] = d


def inline_layout(t: Type, tc: TypeCollector) -> Optional[Dict[str, Any]]:
    """The inline layout of a variable's anonymous aggregate type (through arrays), if any."""
    t = t.unqualified()
    while t.kind == TypeKind.ARRAY:
        t = t.type.unqualified()
    if TypeCollector._is_anonymous(t):
        return tc.layout(t)
    return None


# --------------------------------------------------------------------------- helpers

def helper_outputs(prog: Program) -> Dict[str, str]:
    """Outputs of a handful of drgn helpers, as text."""
    from drgn.helpers.linux.cpumask import for_each_possible_cpu
    from drgn.helpers.linux.fs import for_each_mount, mount_dst, mount_fstype, mount_src
    from drgn.helpers.linux.percpu import per_cpu
    from drgn.helpers.linux.printk import get_printk_records
    from drgn.helpers.linux.slab import for_each_slab_cache

    out: Dict[str, str] = {}

    def attempt(name: str, fn: Any) -> None:
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - record the failure, keep going
            out[name] = f"ERROR: {type(e).__name__}: {e}"

    uts = prog["init_uts_ns"].name
    for field in ("sysname", "nodename", "release", "version", "machine", "domainname"):
        attempt(f"uname.{field}", lambda f=field: string(uts.member_(f)))
    attempt("saved_command_line", lambda: string(prog["saved_command_line"]))
    attempt("dmesg_tail", lambda: "\n".join(
        r.text.decode(errors="replace") for r in get_printk_records(prog)[-50:]))
    attempt("mounts", lambda: "\n".join(
        " ".join(x.decode(errors="replace") for x in (mount_src(m), mount_dst(m), mount_fstype(m)))
        for m in for_each_mount(prog)))
    attempt("slab_caches", lambda: "\n".join(string(c.name) for c in for_each_slab_cache(prog)))
    attempt("runqueues.nr_running", lambda: "\n".join(
        f"{cpu} {per_cpu(prog['runqueues'], cpu).nr_running.value_()}"
        for cpu in for_each_possible_cpu(prog)))
    attempt("totalram_pages", lambda: str(prog["_totalram_pages"].counter.value_()
                                          if "_totalram_pages" in _names(prog)
                                          else prog["totalram_pages"].value_()))
    attempt("nr_cpu_ids", lambda: str(prog["nr_cpu_ids"].value_()))
    attempt("__per_cpu_offset", lambda: "\n".join(
        f"{cpu} {prog['__per_cpu_offset'][cpu].value_():#x}" for cpu in for_each_possible_cpu(prog)))
    return out


#: C base types whose size and signedness depend on the architecture (and,
#: for ``char``, on the kernel: x86 builds with -funsigned-char since 6.2).
BASE_TYPES = ("char", "signed char", "unsigned char", "short int", "int", "long int",
              "long long int", "long unsigned int", "_Bool")


def base_types(prog: Program) -> Dict[str, List[Any]]:
    """``{name: [size, signed]}`` of :data:`BASE_TYPES` as DWARF defines them."""
    out: Dict[str, List[Any]] = {}
    for name in BASE_TYPES:
        try:
            t = prog.type(name)
        except LookupError:
            continue
        out[name] = [t.size, bool(t.is_signed) if t.kind == TypeKind.INT else None]
    return out


def _names(prog: Program) -> set:
    """Names of a few objects that exist in this program (cheap probes)."""
    found = set()
    for n in ("_totalram_pages",):
        try:
            prog.object(n)
            found.add(n)
        except LookupError:
            pass
    return found


def _task_row(prog: Program, task: Object, pid: int, cpu: int) -> Dict[str, Any]:
    """pid, comm, state, cpu and the stack trace (frames, pcs, inline frame
    indices, or ``frames_error``) of one task."""
    from drgn.helpers.linux.sched import task_state_to_char

    row: Dict[str, Any] = {
        "pid": pid, "comm": string(task.comm), "state": task_state_to_char(task), "cpu": cpu,
    }
    try:
        trace = prog.stack_trace(task)
        row["frames"] = [f.name or f"{f.pc:#x}" for f in trace]
        row["pcs"] = [f.pc for f in trace]
        row["inline"] = [i for i, f in enumerate(trace) if f.is_inline]
    except Exception as e:  # noqa: BLE001
        row["frames_error"] = f"{type(e).__name__}: {e}"
    return row


def task_rows(prog: Program) -> List[Dict[str, Any]]:
    """Every task with its state, CPU and stack trace function names."""
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import task_cpu

    rows = []
    for task in for_each_task(prog):
        rows.append(_task_row(prog, task, task.pid.value_(), task_cpu(task)))
    # The idle tasks (pid 0, one per CPU) are not in for_each_task: add them.
    try:
        from drgn.helpers.linux.cpumask import for_each_possible_cpu
        from drgn.helpers.linux.sched import idle_task

        for cpu in for_each_possible_cpu(prog):
            rows.append(_task_row(prog, idle_task(prog, cpu), 0, cpu))
    except (ImportError, LookupError):
        pass
    return rows


def module_rows(prog: Program) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Loaded modules (name, base, size, regions) and the sha256 of each one's BTF."""
    from drgn.helpers.linux.module import for_each_module, module_address_regions

    rows = []
    btf: Dict[str, str] = {}
    for mod in for_each_module(prog):
        name = string(mod.name)
        regions = [[a, s] for a, s in module_address_regions(mod) if s]
        try:
            base = mod.mem[0].base.value_()  # MOD_TEXT (6.4+)
            size = sum(m.size.value_() for m in mod.mem)
        except AttributeError:
            base = mod.core_layout.base.value_()
            size = mod.core_layout.size.value_()
        rows.append({"name": name, "base": base, "size": size, "regions": regions})
    # The BTF the kernel accepted for each module hangs off kernel/bpf/btf.c's btf_modules.
    try:
        from drgn.helpers.linux.list import list_for_each_entry

        for bm in list_for_each_entry("struct btf_module", prog["btf_modules"].address_of_(), "list"):
            b = bm.btf
            btf[string(bm.module.name)] = sha256(prog.read(b.data.value_(), b.data_size.value_()))
    except (AttributeError, LookupError, drgn.FaultError) as e:
        log(f"no module BTF: {e}")
    return rows, btf


# --------------------------------------------------------------------------- generation

def generate(key: str, vmcore: Path, vmlinux: Optional[Path] = None) -> Dict[str, Any]:
    """Build the truth object for a dump of kernel ``key``."""
    from drgn.helpers.linux.boot import kaslr_offset
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    k = kernels.KERNELS[key]
    if vmlinux is None:
        vmlinux = k.debug_vmlinux()
    t0 = time.monotonic()
    prog = open_program(vmcore, vmlinux)
    log(f"debug info loaded in {time.monotonic() - t0:.1f} s")

    index = load_vmlinux_kallsyms(prog)
    syms = index(prog, None, None, False)
    log(f"kallsyms: {len(syms)} symbols")
    bounds = {}
    for _, s, e in SECTION_BOUNDS:
        for n in (s, e):
            a = first_symbol(index, prog, n)
            if a is not None:
                bounds[n] = a
    sections = Sections(bounds)

    by_name: Dict[str, List[drgn.Symbol]] = {}
    for s in syms:
        by_name.setdefault(s.name, []).append(s)

    from drgn.helpers.linux.cpumask import for_each_possible_cpu

    cpus = list(for_each_possible_cpu(prog))
    tc = TypeCollector()
    variables: List[Dict[str, Any]] = []
    unresolved: List[str] = []
    functions: Dict[str, str] = {}
    functions_duplicates: Dict[str, List[List[Any]]] = {}
    function_names_repeated: List[str] = []
    n_data = n_func = 0
    lookup_errors: Dict[str, str] = {}
    for name, group in by_name.items():
        data_syms = [s for s in group
                     if s.kind == SymbolKind.OBJECT or sections.classify(s.address) in DATA_CLASSES]
        func_syms = [s for s in group if s not in data_syms and s.kind == SymbolKind.FUNC]
        if data_syms:
            n_data += len(data_syms)
            obj = None
            try:
                obj = prog.object(name)
            except LookupError:
                pass
            except Exception as e:  # noqa: BLE001 - e.g. "unknown DW_AT_const_value form"
                lookup_errors[name] = f"{type(e).__name__}: {e}"
            matched = False
            if obj is not None and obj.address_ is not None:
                for s in data_syms:
                    if s.address != obj.address_:
                        continue
                    matched = True
                    t = obj.type_
                    row: Dict[str, Any] = {
                        "name": name,
                        "address": s.address,
                        "section": sections.classify(s.address),
                        "type": t.type_name(),
                        "size": type_size(t),
                        "value": None,
                    }
                    if row["section"] == "percpu":
                        # The symbol address is an offset, not memory: give each CPU's value.
                        pv = percpu_values(obj, cpus)
                        if pv is not None:
                            row["percpu_values"] = pv
                    else:
                        row["value"] = scalar_value(obj)
                    if len(data_syms) > 1:
                        row["repeated"] = True  # several data symbols share this name
                    completed = complete_array(prog, t, s.address)
                    if completed is not None:
                        t = completed
                        row["type"] = t.type_name()
                        row["size"] = type_size(t)
                        row["completed_from_symtab"] = True
                    lay = inline_layout(t, tc)
                    if lay is not None:
                        row["layout"] = lay
                    tc.add(t)
                    variables.append(row)
                    break
            if not matched:
                unresolved.append(name)
        if func_syms:
            n_func += len(func_syms)
            if len(func_syms) > 1:
                function_names_repeated.append(name)
            found = resolve_functions(prog, name, func_syms, lookup_errors)
            if found:
                # Deterministic choice for names defined more than once: the lowest address.
                functions[name] = found[0][1].type_.type_name()
                if len(found) > 1:
                    functions_duplicates[name] = [[a, f.type_.type_name()] for a, f in found]
                for _, f in found:
                    tc.add(f.type_)
    log(f"symbols done in {time.monotonic() - t0:.1f} s: {len(variables)} variables, {len(unresolved)} unresolved, {len(functions)} functions, "
        f"{len(tc.types)} types, {len(tc.enums)} enums")

    t1 = time.monotonic()
    uts = prog["init_uts_ns"].name
    btf_file = elf_section(vmlinux, ".BTF")
    try:
        start = prog.symbol("__start_BTF").address
        stop = prog.symbol("__stop_BTF").address
        btf_mem: Optional[str] = sha256(prog.read(start, stop - start))
    except (LookupError, drgn.FaultError):
        btf_mem = None
    modules, modules_btf = module_rows(prog)
    build_id = prog.main_module().build_id
    tasks = task_rows(prog)
    helpers = helper_outputs(prog)
    log(f"tasks, modules, helpers done in {time.monotonic() - t1:.1f} s")
    truth: Dict[str, Any] = {
        "format": FORMAT_VERSION,
        "kernel": {
            "key": key,
            "release": string(uts.release),
            "version": string(uts.version),
            "arch": prog.platform.arch.name.lower() if prog.platform else None,  # x86_64, aarch64
            "build_id": build_id.hex() if build_id else None,
            "kaslr_offset": kaslr_offset(prog),
            "vmlinux_btf_sha256": sha256(btf_file) if btf_file is not None else None,
            "vmlinux_btf_size": len(btf_file) if btf_file is not None else None,
            "vmlinux_btf_in_memory_sha256": btf_mem,
            "modules_btf": modules_btf,
            "sections": sections.as_dict(),
        },
        "variables": variables,
        "data_symbols_unresolved": sorted(unresolved),
        "lookup_errors": lookup_errors,
        "functions": functions,
        "functions_duplicates": functions_duplicates,
        "function_names_repeated": sorted(function_names_repeated),
        "types": tc.types,
        "typedefs": tc.typedefs,
        "enums": tc.enums,
        "type_name_conflicts": sorted(tc.conflicts),
        "tasks": tasks,
        "modules": modules,
        "helpers": helpers,
        "base_types": base_types(prog),
    }
    truth["counts"] = {
        "kallsyms_symbols": len(syms),
        "data_symbols": n_data,
        "data_symbol_names": len(variables) + len(unresolved),
        "variables": len(variables),
        "data_symbols_unresolved": len(unresolved),
        "function_symbols": n_func,
        "functions": len(functions),
        "functions_duplicates": len(functions_duplicates),
        "types": len(tc.types),
        "typedefs": len(tc.typedefs),
        "enums": len(tc.enums),
        "type_name_conflicts": len(tc.conflicts),
        "tasks": len(tasks),
        "modules": len(modules),
        "seconds": round(time.monotonic() - t0, 1),
    }
    return truth


def dump_json(truth: Dict[str, Any]) -> bytes:
    """The compact JSON encoding."""
    return json.dumps(truth, separators=(",", ":"), sort_keys=False).encode()


def write(truth: Dict[str, Any], out: Path) -> Tuple[int, int]:
    """Write ``truth`` zstd-compressed to ``out``; returns (raw, compressed) sizes."""
    import zstandard

    raw = dump_json(truth)
    comp = zstandard.ZstdCompressor(level=19).compress(raw)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(comp)
    tmp.replace(out)
    return len(raw), len(comp)


def load(path: Path) -> Dict[str, Any]:
    """Read a ``truth.json.zst`` (or plain ``.json``) file."""
    data = Path(path).read_bytes()
    if str(path).endswith(".zst"):
        import zstandard

        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return json.loads(data)


def limit_memory() -> None:
    """Cap this process's address space ($TRUTH_MEMORY_GB, default 10 GiB): the machine is shared."""
    import resource

    gb = float(os.environ.get("TRUTH_MEMORY_GB", "10"))
    lim = int(gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    limit_memory()
    ap = argparse.ArgumentParser(description="DWARF ground truth for a vmcore")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="generate the truth of a dump")
    g.add_argument("key", choices=list(kernels.KERNELS))
    g.add_argument("vmcore", type=Path)
    g.add_argument("-o", "--output", type=Path, help="default: vmcores/<key>/truth.json.zst")
    g.add_argument("--vmlinux", type=Path, help="default: the -dbg package's vmlinux")
    g.add_argument("--summary", type=Path, help="also write the counts and sizes here (JSON)")
    s = sub.add_parser("summary", help="print the counts of a truth file")
    s.add_argument("truth", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "summary":
        t = load(a.truth)
        print(json.dumps({"kernel": {k: v for k, v in t["kernel"].items() if k != "modules_btf"},
                          "counts": t["counts"]}, indent=1))
        return 0
    out = a.output or HERE / a.key / "truth.json.zst"
    out.parent.mkdir(parents=True, exist_ok=True)
    truth = generate(a.key, a.vmcore, a.vmlinux)
    raw, comp = write(truth, out)
    log(f"wrote {out}: {raw / 1e6:.1f} MB JSON, {comp / 1e6:.2f} MB compressed")
    if a.summary:
        kern = {k: v for k, v in truth["kernel"].items() if k not in ("modules_btf", "sections")}
        kern["modules_btf"] = sorted(truth["kernel"]["modules_btf"])
        a.summary.write_text(json.dumps({"counts": truth["counts"], "kernel": kern,
                                         "json_size": raw, "compressed_size": comp}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
