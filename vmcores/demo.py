#!/usr/bin/env python3
"""Open a committed vmcore with drgn, BTF only, as a crash analyst would.

``bash dev.sh demo [KEY]`` runs this: it decompresses ``vmcores/<KEY>/``'s
dump (default: the newest kernel committed) and runs ``drgn -c vmcore`` in a
subprocess with the drgn-btfvars plugin auto-loaded (entry point
``drgn.plugins``) and no DWARF anywhere, then a short first-ten-minutes
script: kernel identity, uptime, tasks with stack traces, modules, per-CPU
runqueues, memory, the end of the kernel log, and the plugin's own status.

When the dump has no ``btf_global_variables`` module loaded, the committed
variable BTF for that kernel is given through ``$DRGN_BTFVARS_VARS``.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vmcores import fixtures  # noqa: E402

SCRIPT = r'''
import drgn_btfvars
from drgn import ProgramFlags
from drgn.helpers.linux.mm import totalram_pages
from drgn.helpers.linux.module import for_each_module
from drgn.helpers.linux.percpu import per_cpu
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_dmesg
from drgn.helpers.linux.sched import task_state_to_char
from drgn.helpers.linux.cpumask import for_each_online_cpu

uts = prog["init_uts_ns"].name
print("kernel :", uts.release.string_().decode(), uts.version.string_().decode())
print("jiffies:", prog["jiffies"].value_(), "  type:", prog["jiffies"].type_)
print("memory :", totalram_pages(prog) * prog["PAGE_SIZE"].value_() >> 20, "MiB")
print()
print(f"{'PID':>5} {'ST':2} {'COMM':16} STACK")
for task in for_each_task(prog):
    comm = task.comm.string_().decode()
    if task.pid.value_() and not comm.startswith(("kworker", "ksoftirq", "migration", "cpuhp", "rcu")):
        frames = [f.name or hex(f.pc) for f in prog.stack_trace(task)][:5]
        print(f"{task.pid.value_():>5} {task_state_to_char(task):2} {comm:16} {' < '.join(frames)}")
print()
print("modules:", ", ".join(m.name.string_().decode() for m in for_each_module(prog)))
for cpu in for_each_online_cpu(prog):
    rq = per_cpu(prog["runqueues"], cpu)
    print(f"cpu{cpu}: nr_running={rq.nr_running.value_()} curr={rq.curr.comm.string_().decode()}")
print()
print("dmesg (last 5 lines):")
for line in get_dmesg(prog).decode(errors="replace").splitlines()[-5:]:
    print("  " + line)
print()
print("struct task_struct is", prog.type("struct task_struct").size, "bytes;",
      "prog['init_task'].se.load:", prog["init_task"].se.load)
kb = drgn_btfvars.get(prog)
print()
print(kb.status_text() if hasattr(kb, "status_text") else kb)
'''


def main(argv: list) -> int:
    keys = fixtures.available()
    if not keys:
        print("no committed vmcores under vmcores/", file=sys.stderr)
        return 1
    key = argv[0] if argv else keys[-1]
    if key not in keys:
        print(f"unknown vmcore {key!r}; committed: {', '.join(keys)}", file=sys.stderr)
        return 2
    path = fixtures.vmcore_path(key)
    env = dict(os.environ)
    for var in ("DRGN_BTFVARS_DISABLE", "DRGN_DISABLE_PLUGINS"):
        env.pop(var, None)
    with tempfile.TemporaryDirectory() as tmp:
        vf = fixtures.vars_btf_for_drgn(key, Path(tmp))
        if vf is not None:
            env["DRGN_BTFVARS_VARS"] = str(vf)
        print(f"$ drgn -c {key}/vmcore   # {fixtures.manifest(key)['release']}, no DWARF", flush=True)
        return subprocess.call([sys.executable, "-m", "drgn", "-q", "-c", str(path), "-e", SCRIPT],
                               env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
