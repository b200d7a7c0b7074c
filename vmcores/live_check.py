#!/usr/bin/env python3
"""The checks of the live-kernel harness, run on a live kernel and on a dump of it.

:mod:`live` runs this script twice inside a QEMU guest that has no debug info
(``drgn -k`` semantics: :func:`drgn.program_from_kernel` with the plugin
auto-loaded through its ``drgn.plugins`` entry point), then on the host on a
dump of that same guest (:func:`drgn.program_from_core_dump`, BTF only), and
compares the two outputs::

    python3 live_check.py [--core VMCORE] [--phase stock|vars] [--no-cli]

It prints one JSON object: ``meta`` (who ran it, where the BTF came from,
whether any DWARF was loaded), ``timings`` (seconds per check) and ``checks``
(check name -> item -> value). Every value is a plain JSON value computed the
same way on both sides, so equal values mean equal answers; an item that
raises is recorded as ``{"error": "<exception type>: <message>"}`` and
compared like any other value.

Only answers that should not change between the live run and the dump are
recorded (addresses, types, enumerators, kallsyms, stack traces of tasks that
sleep for the whole run, values of globals written once at boot); things that
do move (``jiffies``, the running tasks) are only looked up, and their type
recorded, never their value.

Needs nothing but drgn and drgn_btfvars (it runs under the guest's Python
3.13 as well as on the host).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

T_START = time.monotonic()

import drgn  # noqa: E402
from drgn import Object, Program, TypeKind  # noqa: E402

T_IMPORT = time.monotonic() - T_START

# Types looked up by name: vmlinux ones and ones only in a module's BTF (the
# guest loads qemu_fw_cfg, loop, ext4 with jbd2/mbcache/crc16, cdrom, isofs).
TYPES = (
    "struct task_struct", "struct rq", "struct module", "struct btf", "struct pt_regs",
    "struct list_head", "union bpf_attr", "struct file_operations", "struct kobject",
    "struct ext4_sb_info", "struct ext4_inode_info", "struct ext4_group_desc",
    "struct journal_s", "journal_t", "struct mb_cache", "struct loop_device", "struct loop_cmd",
    "struct isofs_sb_info", "struct iso_directory_record", "struct cdrom_device_info",
    "struct fw_cfg_sysfs_entry",
)

# Functions: vmlinux (the stack traces below go through them) and modules.
FUNCTIONS = (
    "schedule", "__schedule", "do_nanosleep", "hrtimer_nanosleep", "kthread", "kthreadd",
    "fifo_open", "vfs_read", "do_wait", "start_kernel", "kjournald2", "ext4_fill_super",
    "ext4_file_read_iter", "jbd2_journal_start", "mb_cache_create", "crc16", "isofs_lookup",
    "cdrom_open", "lo_release", "fw_cfg_sysfs_probe",
)

# Enumerators (vmlinux and module BTF).
CONSTANTS = (
    "PIDTYPE_PID", "PIDTYPE_MAX", "TASK_COMM_LEN", "BPF_MAP_TYPE_HASH", "__MAX_NR_ZONES",
    "NR_VM_ZONE_STAT_ITEMS", "CPUHP_ONLINE", "BTF_KIND_VAR", "MOD_TEXT", "MODULE_STATE_LIVE",
    "EXT4_INODE_EXTENTS", "EXT4_STATE_NEW", "BH_Uptodate", "Opt_journal_dev", "Lo_bound",
)

# Named enum types whose every enumerator is recorded.
ENUM_TYPES = (
    "enum pid_type", "enum zone_type", "enum node_stat_item", "enum cpuhp_state",
    "enum bpf_map_type", "enum module_state", "enum mod_mem_type", "enum btf_func_linkage",
)

# Per-CPU variables read through per_cpu() on every CPU.
PERCPU = ("runqueues", "this_cpu_off", "cpu_number", "kernel_stack", "current_task", "pcpu_hot")

# Globals whose value is written once at boot (variable BTF needed).
STABLE_GLOBALS = (
    "init_uts_ns", "nr_cpu_ids", "saved_command_line", "linux_banner", "page_offset_base",
    "vmemmap_base", "vmalloc_base", "max_pfn", "__per_cpu_offset",
    "boot_cpu_data", "init_task", "_totalram_pages", "jiffies", "modules",
    "btf_modules", "init_pid_ns", "system_state", "nr_node_ids",
)

# Globals that move: looked up, type recorded, value not.
MOVING = {"jiffies", "init_task", "modules", "btf_modules", "init_pid_ns", "_totalram_pages",
          "boot_cpu_data"}

# Tasks that sleep in one place for the whole run: the guest's /init starts
# "lsleep" (sleep) and "lfifo" (cat, blocked opening a FIFO), and mounts an
# ext4 file system (its jbd2 thread).
STABLE_COMMS = ("lsleep", "lfifo", "kthreadd")
# x86-64: kernel addresses are in the upper half.
KERNEL_SPACE = 1 << 63
STABLE_PREFIXES = ("jbd2/",)

def _err(e: BaseException) -> Dict[str, str]:
    return {"error": f"{type(e).__name__}: {e}"}


def _rows(names: Iterable[str], row: Callable[[str], Any],
          out: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``row(name)`` for each name, or the error it raised: one name that
    fails must not hide the others. Added to ``out`` when given."""
    out = {} if out is None else out
    for name in names:
        try:
            out[name] = row(name)
        except Exception as e:
            out[name] = _err(e)
    return out


def _address_type(obj: Object) -> List[Any]:
    return [obj.address_, obj.type_.type_name()]


def _digest(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]


def _type_row(t: drgn.Type) -> Dict[str, Any]:
    """A drgn type as comparable data: kind, size, member layout digest."""
    row: Dict[str, Any] = {"name": t.type_name(), "kind": t.kind.name}
    u = t
    while u.kind == TypeKind.TYPEDEF:
        u = u.type
    if u.kind in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.CLASS):
        row["size"] = u.size
        if u.is_complete():
            members = [(m.name, m.bit_offset, m.bit_field_size, m.type.type_name())
                       for m in u.members]
            row["members"] = len(members)
            row["layout"] = _digest(members)
            row["first"] = members[:3]
    elif u.kind == TypeKind.ENUM:
        row["enumerators"] = [list(e) for e in (u.enumerators or ())]
    else:
        try:
            row["size"] = drgn.sizeof(u)
        except Exception:
            pass
    return row


def _obj_row(obj: Object, value: bool) -> Dict[str, Any]:
    row: Dict[str, Any] = {"type": obj.type_.type_name(), "address": obj.address_}
    if value:
        t = obj.type_
        while t.kind == TypeKind.TYPEDEF:
            t = t.type
        if t.kind in (TypeKind.INT, TypeKind.BOOL, TypeKind.POINTER, TypeKind.ENUM):
            row["value"] = obj.value_()
        elif t.kind == TypeKind.ARRAY and t.type.kind == TypeKind.INT and t.type.size == 1:
            row["value"] = obj.string_().decode(errors="replace")
        else:
            row["value"] = _digest(obj.to_bytes_().hex())
    return row


class Checks:
    """Each ``check_*`` method returns ``{item: value}``."""

    def __init__(self, prog: Program, kb: Any, phase: str) -> None:
        self.prog = prog
        self.kb = kb
        self.phase = phase
        self._cpus: Optional[List[int]] = None

    # -------------------------------------------------------------- helpers

    def cpus(self) -> List[int]:
        """Possible CPUs, without any typed global: per-CPU offsets differ for each CPU,
        and ``rq->cpu`` says which CPU a runqueue belongs to."""
        if self._cpus is None:
            from drgn.helpers.linux.percpu import per_cpu

            out = []
            for cpu in range(64):
                try:
                    rq = per_cpu(self.prog["runqueues"], cpu)
                    if rq.cpu.value_() != cpu:
                        break
                except Exception:
                    break
                out.append(cpu)
            self._cpus = out
        return self._cpus

    def tasks(self) -> Iterator[Object]:
        """Every task, without any typed global: CPU 0's idle task is init_task;
        all tasks hang on its ``tasks`` list."""
        from drgn.helpers.linux.list import list_for_each_entry
        from drgn.helpers.linux.percpu import per_cpu

        idle = per_cpu(self.prog["runqueues"], 0).idle
        yield idle[0]
        yield from list_for_each_entry("struct task_struct", idle.tasks.address_of_(), "tasks")

    # -------------------------------------------------------------- checks

    def check_btf_sources(self) -> Dict[str, Any]:
        kb = self.kb
        vm = kb.vmlinux()
        v = kb.vars()
        out: Dict[str, Any] = {
            "vmlinux_btf": None if vm is None else {"bytes": len(vm.data), "types": len(vm),
                                                    "sha256": hashlib.sha256(vm.data).hexdigest()},
            "variable_btf": None if v is None else {
                "bytes": len(v.data), "types": len(v),
                "sha256": hashlib.sha256(v.data).hexdigest()},
        }
        for name in sorted(kb.module_names()):
            b = kb.module_btf(name)
            out[f"module:{name}"] = None if b is None else {
                "bytes": len(b.data), "types": len(b), "sha256": hashlib.sha256(b.data).hexdigest()}
        return out

    def check_types(self) -> Dict[str, Any]:
        vm = self.kb.vmlinux()

        def row(name: str) -> Dict[str, Any]:
            r = _type_row(self.prog.type(name))
            r["in_vmlinux_btf"] = bool(vm is not None and vm.find(name.split()[-1]))
            return r

        return _rows(TYPES, row)

    def check_module_types(self) -> Dict[str, Any]:
        """Every named struct/union that a module's BTF itself defines (not its base's),
        through ``prog.type()``."""
        from drgn_btfvars.btf import BtfKind

        out = {}
        for mod in sorted(self.kb.module_names()):
            b = self.kb.module_btf(mod)
            if b is None:
                continue
            for kind, kw in ((BtfKind.STRUCT, "struct"), (BtfKind.UNION, "union")):
                for tid in b.ids_of_kind(kind):
                    name = b.type(tid).name
                    if not name:
                        continue
                    key = f"{mod}:{kw} {name}"
                    try:
                        t = self.prog.type(f"{kw} {name}")
                        members = [(m.name, m.bit_offset, m.type.type_name()) for m in t.members] \
                            if t.is_complete() else None
                        out[key] = [t.size, _digest(members)]
                    except Exception as e:
                        out[key] = _err(e)
        return out

    def check_kallsyms(self) -> Dict[str, Any]:
        """vmlinux kallsyms (``/proc/kallsyms`` when live) and module kallsyms."""
        out: Dict[str, Any] = {}
        index = self.kb.kallsyms()
        rows = sorted((s.name, s.address, s.kind.name, s.binding.name)
                      for s in index(self.prog, None, None, False))
        out["vmlinux:count"] = len(rows)
        out["vmlinux:names+addresses"] = _digest([r[:2] for r in rows])
        out["vmlinux:kinds+bindings"] = _digest(rows)
        mindex = self.kb.module_kallsyms()
        by_mod: Dict[str, List[Any]] = {}
        for s in mindex(self.prog, None, None, False):
            try:
                mod = self.prog.module(s.address).name
            except LookupError:
                mod = "?"
            by_mod.setdefault(mod, []).append((s.name, s.address))
        for mod, rows in sorted(by_mod.items()):
            out[f"module:{mod}:count"] = len(rows)
            out[f"module:{mod}:digest"] = _digest(sorted(rows))
        for name in ("_stext", "_etext", "__start_BTF", "__per_cpu_start", "init_task",
                     "schedule", "ext4_fill_super"):
            try:
                s = self.prog.symbol(name)
                out[f"symbol:{name}"] = [s.address, s.size, s.kind.name]
            except Exception as e:
                out[f"symbol:{name}"] = _err(e)
        return out

    def check_functions(self) -> Dict[str, Any]:
        def row(name: str) -> Dict[str, Any]:
            f = self.prog.function(name)
            return {"type": f.type_.type_name(), "address": f.address_}

        return _rows(FUNCTIONS, row)

    def check_function_sample(self) -> Dict[str, Any]:
        """Every 25th FUNC of vmlinux BTF and every FUNC of each module's BTF."""
        from drgn_btfvars.btf import BtfKind

        names = []
        vm = self.kb.vmlinux()
        funcs = sorted({vm.type(t).name for t in vm.ids_of_kind(BtfKind.FUNC)})
        names += funcs[::25]
        for mod in sorted(self.kb.module_names()):
            b = self.kb.module_btf(mod)
            if b is not None:
                names += sorted({b.type(t).name for t in b.ids_of_kind(BtfKind.FUNC)})
        return _rows(names, lambda name: _address_type(self.prog.function(name)))

    def check_constants(self) -> Dict[str, Any]:
        def constant(name: str) -> List[Any]:
            c = self.prog.constant(name)
            return [c.value_(), c.type_.type_name()]

        out = _rows(CONSTANTS, constant)
        return _rows(ENUM_TYPES, lambda name: _type_row(self.prog.type(name)), out)

    def check_percpu(self) -> Dict[str, Any]:
        from drgn.helpers.linux.percpu import per_cpu

        out: Dict[str, Any] = {"cpus": self.cpus()}
        for name in PERCPU:
            try:
                var = self.prog[name]
                out[name] = {"type": var.type_.type_name(), "address": var.address_}
            except Exception as e:
                out[name] = _err(e)
                continue
            for cpu in self.cpus():
                try:
                    obj = per_cpu(var, cpu)
                    row: Dict[str, Any] = {"address": obj.address_}
                    if name == "runqueues":
                        row["cpu"] = obj.cpu.value_()
                        row["idle"] = obj.idle.value_()
                        row["idle.comm"] = obj.idle.comm.string_().decode()
                    elif name in ("this_cpu_off", "cpu_number"):
                        row["value"] = obj.value_()
                    out[f"{name}[{cpu}]"] = row
                except Exception as e:
                    out[f"{name}[{cpu}]"] = _err(e)
        return out

    def check_percpu_vars(self) -> Dict[str, Any]:
        """Every per-CPU VAR of vmlinux BTF (stock kernels have these)."""
        from drgn_btfvars.btf import BtfKind

        vm = self.kb.vmlinux()
        names = (vm.type(vid).name for vid in vm.ids_of_kind(BtfKind.VAR))
        return _rows(names, lambda name: _address_type(self.prog[name]))

    def check_tasks(self) -> Dict[str, Any]:
        """Kernel stack traces (program counters and names) of the tasks that sleep for the
        whole run; the list of task names is recorded but not compared item by item."""
        out: Dict[str, Any] = {}
        for task in self.tasks():
            comm = task.comm.string_().decode(errors="replace")
            pid = task.pid.value_()
            if comm not in STABLE_COMMS and not comm.startswith(STABLE_PREFIXES):
                continue
            key = f"{pid}:{comm}"
            try:
                frames = []
                for f in self.prog.stack_trace(task):
                    frames.append((f.name, f.pc))
                    if f.pc < KERNEL_SPACE:
                        # The user-space PC the task returns to ends the kernel stack. drgn
                        # goes on unwinding user space differently: live, /proc/kcore has
                        # no user memory; in a dump it finds one more frame with a garbage PC.
                        break
                # task_struct.state was renamed __state in 5.14 (2f064a59a11f).
                state = getattr(task, "__state" if task.type_.type.has_member("__state") else "state")
                out[key] = {"state": state.value_(), "frames": frames}
            except Exception as e:
                out[key] = _err(e)
        return out

    def check_globals(self) -> Dict[str, Any]:
        """Stable globals by value (variable BTF needed); moving ones by type only."""
        out = _rows(STABLE_GLOBALS,
                    lambda name: _obj_row(self.prog[name], value=name not in MOVING))
        try:
            uts = self.prog["init_uts_ns"].name
            for f in ("sysname", "release", "version", "machine"):
                out[f"init_uts_ns.name.{f}"] = getattr(uts, f).string_().decode()
        except Exception as e:
            out["init_uts_ns.name"] = _err(e)
        try:
            from drgn.helpers.linux.pid import for_each_task

            via = sorted(t.pid.value_() for t in for_each_task(self.prog))
            mine = sorted(t.pid.value_() for t in self.tasks())
            out["for_each_task==tasks list"] = via == mine
        except Exception as e:
            out["for_each_task==tasks list"] = _err(e)
        return out

    def check_globals_sweep(self) -> Dict[str, Any]:
        """Every VAR name of the variable BTF: address and type name."""
        v = self.kb.vars()
        if v is None:
            return {}
        names = dict.fromkeys(name for _, name, _, _ in v.var_records()
                              if not name.startswith("btf_global_variables"))
        return _rows(names, lambda name: _address_type(self.prog[name]))

    def check_modules(self) -> Dict[str, Any]:
        """drgn's module objects (created by the plugin): name -> address ranges."""
        out = {}
        for m in self.prog.modules():
            try:
                ranges = [list(r) for r in (m.address_ranges or ())]
            except Exception as e:
                ranges = _err(e)
            out[f"{type(m).__name__}:{m.name}"] = ranges
        return out


def run_cli(core: Optional[str]) -> Dict[str, Any]:
    """``drgn -k`` (or ``drgn -c``) itself, with the plugin from its entry point."""
    target = ["-c", core] if core else ["-k"]
    code = ("import drgn_btfvars; "
            "print(prog.type('struct task_struct').size, prog.symbol('schedule').address, "
            "drgn_btfvars.get(prog) is not None)")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "drgn", "-q", *target, "-e", code],
                       capture_output=True, text=True, timeout=900)
    return {"rc": r.returncode, "stdout": r.stdout.strip(), "seconds": round(time.monotonic() - t, 2),
            "missing_debug_warning": "missing debugging symbols" in r.stderr
            or "missing debug" in r.stderr.lower(),
            "stderr": r.stderr.strip()[-2000:]}


PHASE_CHECKS = {
    "stock": ("btf_sources", "types", "module_types", "kallsyms", "functions", "function_sample",
              "constants", "percpu", "percpu_vars", "tasks", "modules"),
    "vars": ("btf_sources", "types", "kallsyms", "functions", "constants", "percpu", "tasks",
             "globals", "globals_sweep", "modules"),
}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--core", help="a vmcore (default: the running kernel, like drgn -k)")
    ap.add_argument("--phase", choices=sorted(PHASE_CHECKS), default="vars")
    ap.add_argument("--no-cli", action="store_true", help="skip running the drgn CLI itself")
    ap.add_argument("--only", action="append", default=[], help="run only these checks")
    a = ap.parse_args(argv)
    if os.environ.get("DRGN_BTFVARS_DISABLE"):
        print("DRGN_BTFVARS_DISABLE is set: the plugin would not be auto-loaded", file=sys.stderr)
        return 2
    timings: Dict[str, float] = {"import_drgn": round(T_IMPORT, 3)}
    t = time.monotonic()
    prog = drgn.program_from_core_dump(a.core) if a.core else drgn.program_from_kernel()
    timings["open"] = round(time.monotonic() - t, 3)
    import drgn_btfvars  # the plugin hook has imported it already

    kb = drgn_btfvars.get(prog)
    meta: Dict[str, Any] = {
        "live": not a.core, "phase": a.phase, "python": sys.version.split()[0],
        "drgn": drgn.__version__, "plugin_auto_loaded": kb is not None,
        "release": os.uname().release if not a.core else None,
    }
    if kb is None:
        print(json.dumps({"meta": meta, "error": "the plugin was not auto-loaded"}))
        return 3
    from drgn_btfvars.btf import reader

    meta["accelerator"] = reader._ACCEL is not None
    # drgn's load_vmlinux_kallsyms() reads /proc/kallsyms for a live local kernel as root,
    # else decodes kallsyms from memory through VMCOREINFO.
    live_local = drgn.ProgramFlags.IS_LIVE | drgn.ProgramFlags.IS_LOCAL
    meta["kallsyms_source"] = ("/proc/kallsyms" if prog.flags & live_local == live_local
                               and os.geteuid() == 0 else "memory (VMCOREINFO)")
    meta["vmcoreinfo"] = {k: v for k, v in kb.vmcoreinfo().items()
                          if k in ("OSRELEASE", "BUILD-ID", "KERNELOFFSET", "PAGESIZE")}
    # What drgn -k does next: load the default debug info (our finder says BTF covers it).
    t = time.monotonic()
    try:
        prog.load_default_debug_info()
        meta["load_default_debug_info"] = "ok"
    except drgn.MissingDebugInfoError as e:
        meta["load_default_debug_info"] = f"MissingDebugInfoError: {e}"
    timings["load_default_debug_info"] = round(time.monotonic() - t, 3)
    dwarf = {}
    for m in prog.modules():
        if m.debug_file_path:
            dwarf[m.name] = m.debug_file_path
    meta["modules_with_debug_file"] = dwarf

    checks = Checks(prog, kb, a.phase)
    results: Dict[str, Any] = {}
    for name in PHASE_CHECKS[a.phase]:
        if a.only and name not in a.only:
            continue
        t = time.monotonic()
        try:
            results[name] = getattr(checks, "check_" + name)()
        except Exception as e:  # a whole check failing is a result too
            results[name] = {"<check>": _err(e)}
        timings[name] = round(time.monotonic() - t, 3)
    if not a.no_cli:
        results["cli"] = {"drgn": run_cli(a.core)}
    meta["status"] = kb.status()
    timings["total"] = round(time.monotonic() - T_START, 3)
    json.dump({"meta": meta, "timings": timings, "checks": results}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
