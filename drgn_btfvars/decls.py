"""Degraded mode: typed globals for a stock kernel (no variable BTF at all).

A stock kernel's BTF describes every type but, of the globals, only the
per-CPU variables. drgn's helpers and libdrgn itself need a few dozen other
globals (``init_task``, ``init_pid_ns``, ``prb``, ``slab_caches``, ...).
Their declarations are part of the kernel's source and change rarely, so
this module carries them as a table, :data:`DECLARATIONS`: name → C type
name, as drgn would print the DWARF type.

Rules, so that a declaration never becomes a guess:

* The type is built from this kernel's BTF by name (``prog.type()``). If the
  BTF lacks it (a struct this configuration does not have), or has several
  different definitions of that name, the entry is **skipped**.
* An array whose length is an enumerator (``atomic_long_t
  [NR_VM_ZONE_STAT_ITEMS]``) takes the enumerator's value from this kernel's
  BTF. An array whose length is a macro or a configuration value
  (``NR_CPUS``, ``MAX_SWAPFILES``) is declared without a length
  (``unsigned long []``), as an ``extern`` declaration would be: indexing
  works, ``len()`` does not.
* The address comes from kallsyms (``CONFIG_KALLSYMS_ALL``); it must be
  unique and lie in the kernel's data, BSS or read-only data.
* Entries whose declaration changed within the kernels the table was checked
  on carry the version range (``since``/``until``, with the commit);
  kernels older than :data:`CHECKED_FROM` get no declarations at all.
* Every entry is compared with the DWARF truth of every committed dump
  (``tests/session/test_degraded.py``): a wrong type fails the tests.

Per-CPU variables are not here: the vmlinux BTF has them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Tuple

from drgn import Object, Type

if TYPE_CHECKING:
    from drgn_btfvars.finders import KernelBtf

__all__ = (
    "Declaration",
    "DECLARATIONS",
    "CHECKED_FROM",
    "Declarations",
    "kernel_version",
    "strip_outer_length",
    "check_against_truth",
)

logger = logging.getLogger("drgn_btfvars")

#: The oldest kernel the table was checked on (the committed 6.1 dump):
#: older kernels get no declarations.
CHECKED_FROM: Tuple[int, int] = (6, 1)


class Declaration(NamedTuple):
    """One global's declaration, as the kernel source gives it."""

    #: The global's name.
    name: str
    #: C type name; ``[ENUMERATOR]`` takes the enumerator's value, ``[]`` is
    #: an array of unknown length.
    type_name: str
    #: The file that defines it (for readers of the table).
    source: str
    #: First kernel version with this declaration (``None``: any checked one).
    since: Optional[Tuple[int, int]] = None
    #: First kernel version without it.
    until: Optional[Tuple[int, int]] = None
    #: Only on this architecture (``platform.arch`` name, e.g. ``"X86_64"``).
    arch: Optional[str] = None
    #: A pointer that the kernel's VMCOREINFO also names: its
    #: ``SYMBOL(name)`` line holds the pointer's value, or the address when
    #: the global is an array instead (``VMCOREINFO_SYMBOL_ARRAY`` in
    #: kernel/crash_core.c, kernel/vmcore_info.c since 6.9). The pointer
    #: declaration is used only when that line differs from the address.
    pointer_in_vmcoreinfo: bool = False


def _d(name: str, type_name: str, source: str, **kw: object) -> Declaration:
    return Declaration(name, type_name, source, **kw)  # type: ignore[arg-type]


#: What drgn 0.3.0's helpers, its crash commands and libdrgn look up by name,
#: with each global's declaration in the kernel source.
DECLARATIONS: Tuple[Declaration, ...] = (
    # --- libdrgn: tasks, CPUs, per-CPU offsets, memory model, jiffies
    _d("init_task", "struct task_struct", "init/init_task.c"),
    _d("init_pid_ns", "struct pid_namespace", "kernel/pid.c"),
    _d("jiffies_64", "u64", "kernel/time/timer.c"),
    _d("__per_cpu_offset", "unsigned long []", "mm/percpu.c, arch/x86/kernel/setup_percpu.c"),
    _d("nr_cpu_ids", "unsigned int", "kernel/smp.c"),
    _d("__cpu_possible_mask", "struct cpumask", "kernel/cpu.c"),
    _d("__cpu_online_mask", "struct cpumask", "kernel/cpu.c"),
    _d("__cpu_present_mask", "struct cpumask", "kernel/cpu.c"),
    _d("__cpu_active_mask", "struct cpumask", "kernel/cpu.c"),
    _d("panic_cpu", "atomic_t", "kernel/panic.c"),
    _d("crashing_cpu", "int", "arch/x86/kernel/reboot.c", arch="X86_64"),
    _d("crash_notes", "note_buf_t *", "kernel/crash_core.c"),
    _d("mem_section", "struct mem_section **", "mm/sparse.c (CONFIG_SPARSEMEM_EXTREME)",
       pointer_in_vmcoreinfo=True),
    _d("page_offset_base", "unsigned long", "arch/x86/kernel/head64.c", arch="X86_64"),
    _d("vmalloc_base", "unsigned long", "arch/x86/kernel/head64.c", arch="X86_64"),
    _d("vmemmap_base", "unsigned long", "arch/x86/kernel/head64.c", arch="X86_64"),
    _d("max_pfn", "unsigned long", "mm/memblock.c"),
    _d("max_low_pfn", "unsigned long", "mm/memblock.c"),
    _d("min_low_pfn", "unsigned long", "mm/memblock.c"),
    _d("memblock", "struct memblock", "mm/memblock.c"),
    # --- uname, command line, log
    _d("init_uts_ns", "struct uts_namespace", "init/version.c"),
    _d("saved_command_line", "char *", "init/main.c"),
    _d("prb", "struct printk_ringbuffer *", "kernel/printk/printk.c"),
    _d("tainted_mask", "unsigned long", "kernel/panic.c"),
    # taint_flags is not here: its length, TAINT_FLAGS_COUNT, is a macro
    # that grows with new taint flags (19 on 6.1 and 6.12, 20 on 7.2), and
    # tainted() needs the length.
    _d("avenrun", "unsigned long [3]", "kernel/sched/loadavg.c"),
    # fs/proc/array.c: BUILD_BUG_ON(1 + ilog2(TASK_REPORT_MAX) !=
    # ARRAY_SIZE(task_state_array)): 9 since 06eb61844d84 ("sched/debug: Add
    # explicit TASK_IDLE printing"), v4.14.
    _d("task_state_array", "const char * const [9]", "fs/proc/array.c"),
    # --- modules, mounts, namespaces, processes
    _d("modules", "struct list_head", "kernel/module/main.c"),
    _d("mod_tree", "struct mod_tree_root", "kernel/module/main.c"),
    _d("init_mm", "struct mm_struct", "mm/init-mm.c"),
    _d("init_fs", "struct fs_struct", "fs/fs_struct.c"),
    _d("init_ipc_ns", "struct ipc_namespace", "ipc/msgutil.c"),
    _d("ipc_mni_shift", "int", "ipc/ipc_sysctl.c"),
    _d("init_net", "struct net", "net/core/net_namespace.c"),
    _d("net_namespace_list", "struct list_head", "net/core/net_namespace.c"),
    _d("root_task_group", "struct task_group", "kernel/sched/core.c"),
    _d("task_groups", "struct list_head", "kernel/sched/core.c"),
    _d("cgrp_dfl_root", "struct cgroup_root", "kernel/cgroup/cgroup.c"),
    _d("task_struct_cachep", "struct kmem_cache *", "kernel/fork.c"),
    # --- memory: slab, vmstat, swap, huge pages, vmalloc
    _d("slab_caches", "struct list_head", "mm/slab_common.c"),
    _d("_totalram_pages", "atomic_long_t", "mm/page_alloc.c, mm/mm_init.c"),
    _d("vm_zone_stat", "atomic_long_t [NR_VM_ZONE_STAT_ITEMS]", "mm/vmstat.c"),
    _d("vm_node_stat", "atomic_long_t [NR_VM_NODE_STAT_ITEMS]", "mm/vmstat.c"),
    _d("vm_numa_event", "atomic_long_t [NR_VM_NUMA_EVENT_ITEMS]", "mm/vmstat.c"),
    _d("vm_committed_as", "struct percpu_counter", "mm/util.c"),
    _d("sysctl_overcommit_kbytes", "unsigned long", "mm/util.c"),
    _d("sysctl_overcommit_ratio", "int", "mm/util.c"),
    _d("total_swap_pages", "long", "mm/swapfile.c"),
    _d("nr_swap_pages", "atomic_long_t", "mm/swapfile.c"),
    _d("nr_swapfiles", "unsigned int", "mm/swapfile.c"),
    _d("swap_info", "struct swap_info_struct *[]", "mm/swapfile.c"),
    _d("hstates", "struct hstate []", "mm/hugetlb.c"),
    # NUMA nodes: node_data[MAX_NUMNODES]; x86 declared it with the typedef
    # until "arch, mm: move definition of node_data to generic code"
    # (v6.12); contig_page_data is the !NUMA single node.
    _d("node_data", "pg_data_t *[]", "arch/x86/mm/numa.c", until=(6, 12), arch="X86_64"),
    _d("node_data", "struct pglist_data *[]", "mm/numa.c", since=(6, 12)),
    _d("contig_page_data", "struct pglist_data", "mm/memblock.c (!CONFIG_NUMA)"),
    # vmalloc: one list and tree until 6.9, then per-node trees.
    _d("vmap_area_list", "struct list_head", "mm/vmalloc.c (before 6.9)"),
    _d("vmap_area_root", "struct rb_root", "mm/vmalloc.c (before 6.9)"),
    _d("vmap_nodes", "struct vmap_node *", "mm/vmalloc.c (6.9+)"),
    _d("nr_vmap_nodes", "unsigned int", "mm/vmalloc.c (6.9+)"),
    _d("vmap_zone_size", "unsigned int", "mm/vmalloc.c (6.9+)"),
    _d("hugetlb_max_hstate", "int", "mm/hugetlb.c"),
    # --- devices, interrupts, timers
    # CHRDEV_MAJOR_HASH_SIZE and BLKDEV_MAJOR_HASH_SIZE are 255 in every
    # kernel since 2.6 (include/linux/fs.h, block/genhd.c).
    _d("chrdevs", "struct char_device_struct *[255]", "fs/char_dev.c"),
    _d("cdev_map", "struct kobj_map *", "fs/char_dev.c"),
    _d("major_names", "struct blk_major_name *[255]", "block/genhd.c"),
    _d("blockdev_superblock", "struct super_block *", "block/bdev.c"),
    _d("ioport_resource", "struct resource", "kernel/resource.c"),
    # f8c7511db009 ("block: make block_class constant"), v6.9.
    _d("block_class", "struct class", "block/genhd.c", until=(6, 9)),
    _d("block_class", "const struct class", "block/genhd.c", since=(6, 9)),
    _d("softirq_vec", "struct softirq_action [NR_SOFTIRQS]", "kernel/softirq.c"),
    # IDT_ENTRIES: the 256 vectors of the x86 architecture.
    _d("idt_table", "gate_desc [256]", "arch/x86/kernel/idt.c", arch="X86_64"),
    _d("sparse_irqs", "struct maple_tree", "kernel/irq/irqdesc.c (6.5+)"),
    # RADIX_TREE(irq_desc_tree, ...): struct radix_tree_root is a #define
    # of struct xarray (include/linux/radix-tree.h).
    _d("irq_desc_tree", "struct xarray", "kernel/irq/irqdesc.c (before 6.5)"),
    _d("nr_irqs", "int", "kernel/irq/irqdesc.c"),
    _d("total_nr_irqs", "unsigned int", "kernel/irq/irqdesc.c"),
    # tk_core was an anonymous struct (no BTF name: not declarable) until
    # it became struct tk_data, then timekeeper_data[TIMEKEEPERS_MAX].
    _d("tk_core", "struct tk_data", "kernel/time/timekeeping.c"),
    _d("timekeeper_data", "struct tk_data [TIMEKEEPERS_MAX]", "kernel/time/timekeeping.c"),
    _d("node_states", "nodemask_t [NR_NODE_STATES]", "mm/page_alloc.c"),
    _d("nr_node_ids", "unsigned int", "mm/page_alloc.c, mm/mm_init.c"),
    _d("sysfs_root_kn", "struct kernfs_node *", "fs/sysfs/mount.c"),
    _d("class_kset", "struct kset *", "drivers/base/class.c"),
    _d("bus_kset", "struct kset *", "drivers/base/bus.c"),
    # --- BPF
    _d("prog_idr", "struct idr", "kernel/bpf/syscall.c"),
    _d("map_idr", "struct idr", "kernel/bpf/syscall.c"),
    _d("link_idr", "struct idr", "kernel/bpf/syscall.c"),
    _d("btf_idr", "struct idr", "kernel/bpf/btf.c"),
)

_ARRAY_SUFFIX = re.compile(r"^(.*?)\s*\[([A-Za-z_][A-Za-z_0-9]*|[0-9]*)\]$")
_TAG_KINDS = ("struct ", "union ", "enum ")


def kernel_version(release: str) -> Optional[Tuple[int, int]]:
    """``(major, minor)`` of a kernel release string such as ``6.12.117+deb13-amd64``."""
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def strip_outer_length(type_name: str) -> str:
    """``unsigned long [8192]`` → ``unsigned long []``: how an array declared
    without its length compares with DWARF's complete array."""
    return re.sub(r"\[[0-9]+\]((?:\[[0-9]*\])*)$", r"[]\1", type_name)


def _base_name(type_name: str) -> str:
    """The named type a declaration rests on: ``struct task_struct`` for
    ``struct task_struct *``, ``atomic_long_t`` for ``atomic_long_t [12]``."""
    name = re.sub(r"\s*(\[[^\]]*\]|\*)\s*", " ", type_name)
    words = [w for w in name.split() if w not in ("const", "volatile")]
    return " ".join(words)


class Resolved(NamedTuple):
    """What a declaration became on this kernel."""

    decl: Declaration
    #: The drgn type, or ``None`` when skipped.
    type: Optional[Type]
    #: The C type name actually used (enumerator lengths filled in).
    type_name: Optional[str]
    #: Why the entry was skipped ("" when used).
    skipped: str

    def __repr__(self) -> str:
        # The drgn type's own repr spells out every member: too long here.
        what = self.type_name if self.type is not None else f"skipped: {self.skipped}"
        return f"<Resolved {self.decl.name}: {what}>"


class Declarations:
    """The table applied to one kernel (one per :class:`KernelBtf`).

    Types are resolved on first use of each name and remembered; addresses
    are looked up in kallsyms each time (they cost one dictionary lookup
    once kallsyms is loaded).
    """

    def __init__(self, kb: "KernelBtf", table: Tuple[Declaration, ...] = DECLARATIONS) -> None:
        self.kb = kb
        self.table: Dict[str, List[Declaration]] = {}
        for d in table:
            self.table.setdefault(d.name, []).append(d)
        self._resolved: Dict[str, Resolved] = {}
        self._version: Optional[Tuple[int, int]] = None
        self._arch: Optional[str] = None
        self._data_ranges: Optional[List[Tuple[int, int]]] = None

    def __repr__(self) -> str:
        return (f"<Declarations: {len(self.table)} names, {len(self._resolved)} resolved "
                "so far; .summary() resolves all>")

    # ---------------------------------------------------------------- facts

    def version(self) -> Optional[Tuple[int, int]]:
        if self._version is None:
            self._version = kernel_version(self.kb.vmcoreinfo().get("OSRELEASE", ""))
        return self._version

    def arch(self) -> str:
        if self._arch is None:
            platform = self.kb.prog.platform
            self._arch = platform.arch.name if platform is not None else ""
        return self._arch

    def _ranges(self) -> List[Tuple[int, int]]:
        """[start, end) of the kernel's data, BSS and read-only data, from kallsyms."""
        if self._data_ranges is None:
            ranges = []
            for start, end in (("_sdata", "_edata"), ("__bss_start", "__bss_stop"),
                               ("__start_rodata", "__end_rodata")):
                a = self.kb._symbol_address(start)
                b = self.kb._symbol_address(end)
                if a is not None and b is not None and a < b:
                    ranges.append((a, b))
            self._data_ranges = ranges
        return self._data_ranges

    # ---------------------------------------------------------------- types

    def resolve(self, name: str) -> Optional[Resolved]:
        """The declaration of ``name`` applied to this kernel (``None`` if
        the table has no entry)."""
        decls = self.table.get(name)
        if decls is None:
            return None
        r = self._resolved.get(name)
        if r is None:
            # Entries of one name have disjoint version ranges: the first
            # one that applies, else the first one's reason.
            tried = [self._resolve(d) for d in decls]
            r = next((x for x in tried if x.type is not None), tried[0])
            self._resolved[name] = r
        return r

    def _skip(self, decl: Declaration, why: str) -> Resolved:
        return Resolved(decl, None, None, why)

    def _resolve(self, decl: Declaration) -> Resolved:
        version = self.version()
        if version is None:
            return self._skip(decl, "kernel version unknown")
        if version < CHECKED_FROM:
            return self._skip(decl, f"kernel older than {CHECKED_FROM[0]}.{CHECKED_FROM[1]} "
                              "(table not checked there)")
        if decl.since is not None and version < decl.since:
            return self._skip(decl, f"declared so since {decl.since[0]}.{decl.since[1]}")
        if decl.until is not None and version >= decl.until:
            return self._skip(decl, f"declared so until {decl.until[0]}.{decl.until[1]}")
        if decl.arch is not None and self.arch() != decl.arch:
            return self._skip(decl, f"{decl.arch} only")
        base = _base_name(decl.type_name)
        if base.startswith(_TAG_KINDS) or not self._is_primitive(base):
            defs = self.kb.types_named(base)
            if not defs:
                return self._skip(decl, f"this kernel's BTF has no {base}")
            if len(defs) > 1 and not _same_layout(defs):
                return self._skip(decl, f"this kernel's BTF has several different {base}")
        type_name = self._fill_lengths(decl.type_name)
        if type_name is None:
            return self._skip(decl, "array length enumerator not in this kernel's BTF")
        try:
            t = self.kb.prog.type(type_name)
        except (LookupError, SyntaxError) as e:
            return self._skip(decl, f"type {type_name!r} not found: {e}")
        return Resolved(decl, t, type_name, "")

    @staticmethod
    def _is_primitive(base: str) -> bool:
        words = set(base.split())
        return bool(words) and words <= {"char", "short", "int", "long", "signed", "unsigned",
                                         "_Bool", "float", "double", "void"}

    def _fill_lengths(self, type_name: str) -> Optional[str]:
        """Replace ``[ENUMERATOR]`` by its value in this kernel's BTF."""
        def repl(m: "re.Match[str]") -> str:
            obj = self.kb._find_constant(m.group(1))
            if obj is None:
                raise LookupError(m.group(1))
            return f"[{obj.value_()}]"

        try:
            return re.sub(r"\[([A-Za-z_][A-Za-z_0-9]*)\]", repl, type_name)
        except LookupError:
            return None

    # ---------------------------------------------------------------- objects

    def object(self, name: str) -> Optional[Object]:
        """The declared global ``name`` at its kallsyms address, or ``None``."""
        r = self.resolve(name)
        if r is None or r.type is None:
            return None
        address = self.kb._symbol_address(name)
        if address is None:
            return None
        ranges = self._ranges()
        if ranges and not any(lo <= address < hi for lo, hi in ranges):
            return None
        if r.decl.pointer_in_vmcoreinfo:
            value = self.kb.vmcoreinfo().get(f"SYMBOL({name})")
            if value is None or int(value, 16) == address:
                return None
        return Object(self.kb.prog, r.type, address=address)

    def summary(self) -> Dict[str, object]:
        """How the table applies to this kernel: every entry resolved."""
        used, skipped = [], {}
        for name in self.table:
            r = self.resolve(name)
            assert r is not None
            if r.type is None:
                skipped[name] = r.skipped
            else:
                used.append(name)
        return {"entries": len(self.table), "typed": len(used), "skipped": skipped}


def _same_layout(types: List[Type]) -> bool:
    """Whether several BTF definitions of one name describe the same layout
    (BTF keeps duplicates that differ only in where they came from)."""
    def shape(t: Type) -> object:
        if t.kind.name in ("STRUCT", "UNION") and t.is_complete():
            return [(m.name, m.bit_offset, m.bit_field_size, m.type.type_name())
                    for m in t.members]
        if t.kind.name == "TYPEDEF":
            return t.type.type_name()
        return t.type_name()

    first = shape(types[0])
    return all(shape(t) == first for t in types[1:])


def check_against_truth(kb: "KernelBtf", truth_variables: List[Dict[str, Any]],
                        table: Tuple[Declaration, ...] = DECLARATIONS,
                        ) -> Dict[str, List[Tuple[str, str]]]:
    """Each entry of ``table`` on this kernel against the DWARF truth of the
    same dump (``truth["variables"]``, see ``vmcores/truth.py``), bucketed:
    ``matched``, ``skipped`` (with the reason), ``absent`` (not in kallsyms,
    nor in DWARF), ``mismatched`` and ``unverifiable`` (typed, but DWARF has
    no single answer). A declaration without a length matches DWARF's
    complete array of the same element type."""
    d = Declarations(kb, table)
    by_name: Dict[str, List[Dict[str, Any]]] = {}
    for v in truth_variables:
        by_name.setdefault(v["name"], []).append(v)
    out: Dict[str, List[Tuple[str, str]]] = {
        k: [] for k in ("matched", "skipped", "absent", "mismatched", "unverifiable")}
    for name in d.table:
        r = d.resolve(name)
        assert r is not None
        if r.type is None:
            out["skipped"].append((name, r.skipped))
            continue
        obj = d.object(name)
        rows = by_name.get(name, [])
        if obj is None:
            # Not in kallsyms (this kernel has no such global), or outside
            # the data sections: DWARF must not know it either.
            if rows:
                out["mismatched"].append((name, f"not found, DWARF has {rows[0]['type']}"))
            else:
                out["absent"].append((name, r.type_name or ""))
            continue
        if len(rows) != 1:
            out["unverifiable"].append((name, f"{len(rows)} DWARF rows"))
            continue
        want = rows[0]
        got = obj.type_.type_name()
        want_type = strip_outer_length(want["type"]) if got.endswith("[]") else want["type"]
        if got != want_type or obj.address_ != want["address"]:
            out["mismatched"].append(
                (name, f"{got} at {obj.address_:#x}, DWARF {want['type']} at {want['address']:#x}"))
        else:
            out["matched"].append((name, got))
    return out
