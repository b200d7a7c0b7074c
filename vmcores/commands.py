"""A crash analyst's first ten minutes, recorded with DWARF and replayed with BTF.

The same list of drgn helpers (:data:`HELPERS`) and crash-compatible commands
(:data:`COMMANDS`, drgn 0.3.0's ``%crash``) is run on a dump twice:

* here, with drgn and the kernel's ``-dbg`` vmlinux (DWARF, no plugin), and
  the outputs are committed as ``vmcores/<key>/commands.json.zst``;
* by ``tests/session/test_parity.py``, with BTF only, and compared.

Usage::

    python3 vmcores/commands.py record [KEY ...]      # needs the -dbg vmlinux
    python3 vmcores/commands.py show KEY [NAME]       # print recorded outputs

The outputs are compared after :func:`compare`'s normalisations, each of
which is justified in its docstring; anything else that differs is a
failure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

HERE = Path(__file__).resolve().parent
FORMAT_VERSION = 1
FILE_NAME = "commands.json.zst"

# --------------------------------------------------------------------------- what runs

#: crash-compatible commands (``%crash <command>``). A bare ``bt``, ``ipcs``
#: or ``mount`` needs the panic context, which these dumps (taken by QEMU,
#: not by a panic) do not have: they are given a task instead. Adding one
#: means recording again (``python3 vmcores/commands.py record``).
COMMANDS: Tuple[str, ...] = (
    "sys",
    "ps",
    "ps -t",
    "ps -k",
    "ps -u",
    "ps -G",
    "ps -l",
    "ps -p 1",
    "ps -c 1",
    "mod",
    "mod -t",
    "log",
    "bt 1",
    "bt 2",
    "bt -f 1",
    "foreach bt",
    "foreach files",
    "runq",
    "runq -t",
    "kmem -i",
    "kmem -s",
    "kmem -V",
    "kmem -z",
    "kmem -f",
    "kmem -h",
    "kmem -v",
    "mount -n 1",
    "files 1",
    "vm 1",
    "sig 1",
    "sig -l",
    "task 1",
    "task -R comm 1",
    "timer",
    "timer -r",
    "irq",
    "irq -s",
    "irq -b",
    "dev",
    "dev -d",
    "swap",
    "net",
    "ipcs -n 1",
    "bpf",
    "p jiffies",
    "whatis init_task",
    "whatis task_struct",
    "whatis rq",
    "whatis page",
    "whatis mm_struct",
)
# Not compared: ``bt -l`` and ``sym`` print source lines, which only DWARF
# has; ``kmem -p`` prints every page (64k lines).


def _text(b: bytes) -> str:
    return b.decode(errors="replace")


def _helper_tasks(prog: Any) -> str:
    """for_each_task + task_state_to_char + task_cpu, then the idle tasks."""
    from drgn.helpers.linux.cpumask import for_each_possible_cpu
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import idle_task, task_cpu, task_state_to_char

    lines = []
    for task in for_each_task(prog):
        lines.append(f"{task.pid.value_()} {task.real_parent.pid.value_()} "
                     f"{task_state_to_char(task)} {task_cpu(task)} {_text(task.comm.string_())}")
    for cpu in for_each_possible_cpu(prog):
        task = idle_task(prog, cpu)
        lines.append(f"idle {cpu} {task_state_to_char(task)} {_text(task.comm.string_())}")
    return "\n".join(lines)


def _helper_dmesg(prog: Any) -> str:
    from drgn.helpers.linux.printk import get_dmesg

    return _text(get_dmesg(prog))


def _helper_modules(prog: Any) -> str:
    from drgn.helpers.linux.module import for_each_module, module_address_regions

    lines = []
    for mod in for_each_module(prog):
        regions = " ".join(f"{a:x}+{s:x}" for a, s in module_address_regions(mod) if s)
        lines.append(f"{_text(mod.name.string_())} {mod.state.format_(type_name=False)} {regions}")
    return "\n".join(lines)


def _helper_uname(prog: Any) -> str:
    uts = prog["init_uts_ns"].name
    fields = ("sysname", "nodename", "release", "version", "machine", "domainname")
    lines = [f"{f}: {_text(uts.member_(f).string_())}" for f in fields]
    lines.append(f"cmdline: {_text(prog['saved_command_line'].string_())}")
    return "\n".join(lines)


def _helper_runqueues(prog: Any) -> str:
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.sched import cpu_rq

    lines = []
    for cpu in for_each_online_cpu(prog):
        rq = cpu_rq(prog, cpu)
        lines.append(f"{cpu} nr_running={rq.nr_running.value_()} "
                     f"nr_switches={rq.nr_switches.value_()} clock={rq.clock.value_()} "
                     f"curr={rq.curr.pid.value_()}:{_text(rq.curr.comm.string_())}")
    return "\n".join(lines)


def _helper_slab_caches(prog: Any) -> str:
    from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_objects_per_slab

    return "\n".join(
        f"{_text(c.name.string_())} {c.object_size.value_()} {c.size.value_()} "
        f"{slab_cache_objects_per_slab(c)}" for c in for_each_slab_cache(prog))


def _helper_mounts(prog: Any) -> str:
    from drgn.helpers.linux.fs import for_each_mount, mount_dst, mount_fstype, mount_src

    return "\n".join(
        f"{_text(mount_src(m))} {_text(mount_dst(m))} {_text(mount_fstype(m))}"
        for m in for_each_mount(prog))


def _helper_memory(prog: Any) -> str:
    """totalram_pages, free pages, and every zone and node vm_stat counter."""
    from drgn.helpers.linux.mm import totalram_pages
    from drgn.helpers.linux.vmstat import (
        global_node_page_state,
        global_zone_page_state,
        nr_free_pages,
    )

    lines = [f"totalram_pages {totalram_pages(prog)}", f"nr_free_pages {nr_free_pages(prog)}"]
    for enum_name, fn in (("enum zone_stat_item", global_zone_page_state),
                          ("enum node_stat_item", global_node_page_state)):
        for name, value in prog.type(enum_name).enumerators:
            if name.startswith("NR_VM_") and name.endswith("_ITEMS"):
                continue
            lines.append(f"{name} {fn(prog, value)}")
    return "\n".join(lines)


def _helper_cpus(prog: Any) -> str:
    from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
    from drgn.helpers.linux.percpu import per_cpu

    lines = [f"nr_cpu_ids {prog['nr_cpu_ids'].value_()}",
             "online " + " ".join(map(str, for_each_online_cpu(prog)))]
    for cpu in for_each_possible_cpu(prog):
        # per_cpu() silently reads CPU 0's copy if __per_cpu_offset is missing.
        rq = per_cpu(prog["runqueues"], cpu)
        lines.append(f"{cpu} runqueues@{rq.address_:x} cpu={rq.cpu.value_()}")
    return "\n".join(lines)


def _helper_loadavg(prog: Any) -> str:
    from drgn.helpers.linux.sched import loadavg

    return " ".join(f"{x:.2f}" for x in loadavg(prog))


def _helper_tainted(prog: Any) -> str:
    from drgn.helpers.linux.panic import tainted

    return repr(tainted(prog))


#: drgn helpers, by name: each returns text.
HELPERS: Dict[str, Callable[[Any], str]] = {
    "tasks": _helper_tasks,
    "dmesg": _helper_dmesg,
    "modules": _helper_modules,
    "uname": _helper_uname,
    "runqueues": _helper_runqueues,
    "slab_caches": _helper_slab_caches,
    "mounts": _helper_mounts,
    "memory": _helper_memory,
    "cpus": _helper_cpus,
    "loadavg": _helper_loadavg,
    "tainted": _helper_tainted,
}

ERROR_PREFIX = "ERROR: "


def run_command(prog: Any, command: str) -> str:
    """One crash command's standard output; an exception it raises is
    appended as a last line starting with :data:`ERROR_PREFIX`."""
    from drgn.commands import run_command as drgn_run_command

    buf = io.StringIO()
    err = ""
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            drgn_run_command(prog, "crash " + command, globals={})
    except Exception as e:  # noqa: BLE001 - an error is an output too
        err = f"{ERROR_PREFIX}{type(e).__name__}: {e}"
    out = buf.getvalue()
    return out + err if not out or out.endswith("\n") else out + "\n" + err


def run_helper(prog: Any, name: str) -> str:
    try:
        return HELPERS[name](prog)
    except Exception as e:  # noqa: BLE001
        return f"{ERROR_PREFIX}{type(e).__name__}: {e}"


def names() -> List[str]:
    """Every output's key: ``helper:<name>`` and ``crash:<command>``."""
    return [f"helper:{n}" for n in HELPERS] + [f"crash:{c}" for c in COMMANDS]


def run(prog: Any, key: str) -> str:
    """The output of one :func:`names` entry."""
    kind, _, name = key.partition(":")
    return run_helper(prog, name) if kind == "helper" else run_command(prog, name)


def run_all(prog: Any) -> Dict[str, str]:
    return {k: run(prog, k) for k in names()}


# --------------------------------------------------------------------------- comparison

class Comparison(NamedTuple):
    """One output compared: ``status`` is ``same``, ``normalised`` (equal
    after the rules in ``rules``), ``partial`` (only lines missing, none
    different; the BTF side raised or skipped), ``error`` (the BTF side
    failed and printed nothing DWARF contradicts) or ``different``."""

    key: str
    status: str
    rules: Dict[str, int]
    diff: List[str]


_HEX = re.compile(r"^(?:0x)?([0-9a-f]{8,16})$")
_CLONE_SUFFIX = re.compile(r"(?:\.(?:constprop|isra|part|cold|lto_priv)(?:\.\d+)?)+")
_UNKNOWN_SP = re.compile(r"\[\?{16}\]")
_KNOWN_SP = re.compile(r"\[[0-9a-f]{16}\]")
_STACK_WORDS = re.compile(r"^\s+[0-9a-f]{16}:(?:\s+[0-9a-f]{16})+$")


class _Normaliser:
    """The normalisations, each one counted when used. They need the BTF
    program to check what they accept (symbols, labels)."""

    def __init__(self, prog: Any) -> None:
        self.prog = prog
        self.used: Dict[str, int] = {}

    def _use(self, rule: str) -> None:
        self.used[rule] = self.used.get(rule, 0) + 1

    def file_paths(self, key: str, lines: List[str]) -> List[str]:
        """``sys`` prints the vmlinux file (DWARF) or none (BTF: there is no
        vmlinux file) and the dump's file name (a temporary path): both
        values are dropped, the rest of the line kept."""
        if key != "crash:sys":
            return lines
        out = []
        for line in lines:
            m = re.match(r"^(\s*(?:KERNEL|DUMPFILE):)\s*(\S*/\S*)?(.*)$", line)
            if m:
                if m.group(2):
                    self._use("file path in sys")
                line = f"{m.group(1)} <file> {m.group(3).strip()}".rstrip()
            out.append(line)
        return out

    def inline_frames(self, lines: List[str]) -> List[str]:
        """DWARF knows inlined calls and prints them as ``#N (inline)``
        frames; BTF has no such information. They are dropped and the other
        frames renumbered (every other frame, with its stack pointer and
        PC, must still be equal)."""
        out = []
        n = 0
        for line in lines:
            m = re.match(r"^\s*#\s*(\d+) (.*)$", line)
            if m and m.group(1) == "0":
                n = 0  # the next task's trace
            if m and m.group(2).startswith("(inline)"):
                self._use("inline frame")
                continue
            if m:
                line = f"{'#' + str(n):>3} {m.group(2)}"
                n += 1
            out.append(line)
        return out

    def stack_words(self, d_lines: List[str], b_lines: List[str]) -> List[str]:
        """``bt -f`` prints the stack words of each frame, from its stack
        pointer. When BTF's frames have no stack pointer (frame-pointer
        unwinding, see :meth:`label_or_module_symbol`), it prints none:
        DWARF's are dropped then, and only then."""
        if not any(_UNKNOWN_SP.search(line) for line in b_lines):
            return d_lines
        out = [line for line in d_lines if not _STACK_WORDS.match(line)]
        if len(out) != len(d_lines):
            self._use("stack words of frames without a stack pointer")
        return out

    def label_or_module_symbol(self, d: str, b: str) -> bool:
        """Whether two differing lines differ only in tokens where

        * DWARF names function ``F`` and BTF names ``L``, a kallsyms symbol
          inside ``F`` at or before the frame's PC (an assembly label such
          as ``entry_SYSCALL_64_after_hwframe`` in ``entry_SYSCALL_64``): the
          line must be a ``bt`` frame ``F at PC``; or
        * DWARF prints ``(T [0])`` and BTF ``(T [])``: BTF encodes both as
          zero elements (the known loss in the README and
          :mod:`drgn_btfvars.verify`); or
        * DWARF prints an address in a module (it has no debug info for
          modules) and BTF the name of the module kallsyms symbol that
          contains it (drgn's own ``prog.symbol(address)``); or
        * DWARF names function ``F`` and BTF names ``F.constprop.0`` (or
          ``.isra``, ``.part``, ``.cold``) at the same PC: DWARF names a
          GCC clone after its source function, kallsyms after the clone's
          linker symbol; or
        * a ``bt`` frame's stack pointer is ``[????????????????]`` in BTF:
          without DWARF's call frame information (arm64 has no ORC) drgn
          unwinds through frame pointers, which give every PC but not the
          stack pointer of each frame.
        """
        dt, bt = d.split(), b.split()
        if len(dt) != len(bt):
            return False
        rules = []
        for i, (x, y) in enumerate(zip(dt, bt)):
            if x == y:
                continue
            if self._module_symbol_at(x, y):
                rules.append("module symbol name for an address")
            elif x.replace("[0])", "[])") == y:
                rules.append("x[0] shown as x[] (a known loss of BTF)")
            elif (i + 2 < len(dt) and dt[i + 1] == "at" and bt[i + 1] == "at"
                  and dt[i + 2] == bt[i + 2] and self._label_inside(y, x, dt[i + 2])):
                rules.append("kallsyms label inside the DWARF function")
            elif (i + 2 < len(dt) and dt[i + 1] == "at" and bt[i + 1] == "at"
                  and dt[i + 2] == bt[i + 2] and y.startswith(x)
                  and _CLONE_SUFFIX.fullmatch(y[len(x):])):
                rules.append("GCC clone suffix in the kallsyms name")
            elif _UNKNOWN_SP.fullmatch(y) and _KNOWN_SP.fullmatch(x):
                rules.append("stack pointer unknown (frame-pointer unwinding)")
            else:
                return False
        for r in rules:
            self._use(r)
        return bool(rules)

    def _module_symbol_at(self, x: str, y: str) -> bool:
        m = _HEX.match(x)
        if not m or _HEX.match(y):
            return False
        address = int(m.group(1), 16)
        try:
            sym = self.prog.symbol(address)
            module = self.prog.module(address)
        except LookupError:
            return False
        from drgn import RelocatableModule

        return sym.name == y and isinstance(module, RelocatableModule)

    def _label_inside(self, label: str, function: str, pc_text: str) -> bool:
        try:
            pc = int(pc_text, 16)
            labels = self.prog.symbols(label)
            functions = self.prog.symbols(function)
        except (LookupError, ValueError):
            return False
        return any(f.address <= lab.address <= pc for f in functions for lab in labels)


def _split(text: str) -> Tuple[List[str], Optional[str]]:
    lines = text.splitlines()
    err = None
    if lines and lines[-1].startswith(ERROR_PREFIX):
        err = lines.pop()
    return lines, err


def compare(key: str, dwarf: str, btf: str, prog: Any) -> Comparison:
    """Compare one output of the BTF program ``prog`` with DWARF's."""
    import difflib

    if dwarf == btf:
        return Comparison(key, "same", {}, [])
    norm = _Normaliser(prog)
    d_lines, d_err = _split(dwarf)
    b_lines, b_err = _split(btf)
    d_lines, b_lines = norm.file_paths(key, d_lines), norm.file_paths(key, b_lines)
    if key.startswith("crash:bt") or key == "crash:foreach bt":
        d_lines = norm.inline_frames(d_lines)
        d_lines = norm.stack_words(d_lines, b_lines)
    diff = list(difflib.unified_diff(d_lines, b_lines, "dwarf", "btf", lineterm="", n=0))
    matcher = difflib.SequenceMatcher(None, d_lines, b_lines, autojunk=False)
    missing = extra = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1 and all(
                norm.label_or_module_symbol(d_lines[i1 + k], b_lines[j1 + k])
                for k in range(i2 - i1)):
            continue
        if op == "delete":
            missing += i2 - i1
            continue
        extra += 1
    if d_err != b_err and b_err is not None and d_err is None and not extra:
        status = "partial" if b_lines else "error"
        return Comparison(key, status, norm.used, diff + ([b_err] if b_err else []))
    if d_err != b_err:
        extra += 1
    if extra:
        return Comparison(key, "different", norm.used, diff + [f"dwarf: {d_err}", f"btf: {b_err}"])
    if missing:
        return Comparison(key, "partial", norm.used, diff)
    return Comparison(key, "normalised", norm.used, [])


# --------------------------------------------------------------------------- recording

def _zstd() -> Any:
    import zstandard

    return zstandard


def load(key: str) -> Optional[Dict[str, Any]]:
    """The recorded DWARF outputs of a kernel, or ``None`` if not recorded."""
    path = HERE / key / FILE_NAME
    if not path.is_file():
        return None
    data = _zstd().ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    return json.loads(data)


def _record_one(key: str) -> Dict[str, Any]:
    """Run everything with DWARF. drgn's crash commands are plugins
    themselves: only this project's plugin is disabled (and told to stay
    off), and the check below makes sure none of its finders is there."""
    os.environ["DRGN_DISABLE_PLUGINS"] = "btfvars"
    os.environ["DRGN_BTFVARS_DISABLE"] = "1"
    sys.path.insert(0, str(HERE.parent))
    import drgn

    from vmcores import fixtures

    vmlinux = fixtures.debug_vmlinux(key)
    if vmlinux is None:
        raise SystemExit(f"{key}: no -dbg vmlinux in the cache (python3 vmcores/build.py {key} "
                         "downloads it)")
    prog = drgn.Program()
    prog.set_core_dump(str(fixtures.vmcore_path(key)))
    prog.load_debug_info([str(vmlinux)])
    outputs = run_all(prog)
    finders = set(prog.registered_type_finders()) | set(prog.registered_object_finders())
    if "btfvars" in finders:
        raise SystemExit("the btfvars plugin was loaded: this is not a DWARF-only recording")
    return {
        "format": FORMAT_VERSION,
        "key": key,
        "drgn": drgn.__version__,
        "vmcore_sha256": fixtures.manifest(key)["vmcore"]["sha256"],
        "outputs": outputs,
    }


def record(key: str) -> Path:
    """Record a kernel's outputs in a child process (no plugin in it) and
    write ``vmcores/<key>/commands.json.zst``."""
    proc = subprocess.run([sys.executable, __file__, "_record", key], capture_output=True,
                          text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{key}: recording failed:\n{proc.stderr}")
    data = json.dumps(json.loads(proc.stdout), indent=0, sort_keys=True).encode()
    out = HERE / key / FILE_NAME
    out.write_bytes(_zstd().ZstdCompressor(level=19).compress(data))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record DWARF outputs for kernels (default: all)")
    r.add_argument("keys", nargs="*")
    s = sub.add_parser("show", help="print recorded outputs")
    s.add_argument("key")
    s.add_argument("name", nargs="?")
    i = sub.add_parser("_record")
    i.add_argument("key")
    a = p.parse_args(argv)
    if a.cmd == "_record":
        json.dump(_record_one(a.key), sys.stdout)
        return 0
    if a.cmd == "record":
        sys.path.insert(0, str(HERE.parent))
        from vmcores import fixtures

        for key in a.keys or fixtures.available():
            out = record(key)
            print(f"{key}: {out} ({out.stat().st_size:,} bytes)")
        return 0
    rec = load(a.key)
    if rec is None:
        print(f"{a.key}: nothing recorded", file=sys.stderr)
        return 1
    for k, v in rec["outputs"].items():
        if a.name is None or a.name in k:
            print(f"===== {k}\n{v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
