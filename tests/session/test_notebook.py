"""The public API from IPython (what a Jupyter kernel runs): the plugin loads
by itself in ``drgn.program_from_core_dump()``, objects display in one
short line, and how long the first steps take (printed, never asserted)."""

import os
import subprocess
import sys
import time

import pytest

import drgn_btfvars
from vmcores import fixtures

from .conftest import BtfSession

IPython = pytest.importorskip("IPython", reason="IPython (the 'test' extra) is not installed")

CELLS = r"""
import time
t0 = time.perf_counter()
import drgn, drgn_btfvars
prog = drgn.program_from_core_dump(VMCORE)
t1 = time.perf_counter()
jiffies = prog["jiffies"]
comm = prog["init_task"].comm.string_().decode()
t2 = time.perf_counter()
trace = prog.stack_trace(1)
t3 = time.perf_counter()
kb = drgn_btfvars.get(prog)
status = kb.status_text()
t4 = time.perf_counter()
print("REPR", repr(kb))
print("COMM", comm)
print("TYPE", jiffies.type_)
print("FRAMES", len(trace))
print("TIMES open=%.3f first-lookups=%.3f stack-trace=%.3f status=%.3f" % (t1 - t0, t2 - t1, t3 - t2, t4 - t3))
"""


def test_ipython_session(vmcore_path, vmcore_key, tmp_path, record_property) -> None:
    """A fresh IPython process: the plugin's entry point enables itself."""
    env = dict(os.environ)
    env.pop("DRGN_BTFVARS_DISABLE", None)
    env.pop("DRGN_DISABLE_PLUGINS", None)
    env["IPYTHONDIR"] = str(tmp_path / "ipython")  # no profile of the user's
    if not fixtures.fake_module_loaded(vmcore_key):
        vf = fixtures.vars_btf_for_drgn(vmcore_key, tmp_path)
        if vf is None:
            pytest.skip(f"{vmcore_key}: no variable BTF")
        env["DRGN_BTFVARS_VARS"] = str(vf)
    code = f"VMCORE = {str(vmcore_path)!r}\n" + CELLS
    r = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner",
                        "--colors=NoColor", "-c", code],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    release = fixtures.truth(vmcore_key)["kernel"]["release"]
    assert lines["REPR"] == f"<KernelBtf {release}: variable BTF>"
    assert lines["COMM"] == "swapper/0"
    assert lines["TYPE"] == "volatile unsigned long"
    assert int(lines["FRAMES"]) > 3
    print(f"\n{vmcore_key} in IPython: {lines['TIMES']}")
    record_property("ipython times", lines["TIMES"])


def test_display(btf_session: BtfSession) -> None:
    """What IPython shows for the objects the API returns: one line each, no
    type spelled out member by member."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    kb = drgn_btfvars.get(btf_session.prog)
    for obj in (kb, kb.declarations(), kb.declarations().resolve("init_task")):
        text = shell.display_formatter.format(obj)[0]["text/plain"]
        assert "\n" not in text and len(text) < 200, text
    status = kb.status()
    text = shell.display_formatter.format(status)[0]["text/plain"]
    assert len(text.splitlines()) < 40, text


def test_first_steps_timing(vmcore_path, vmcore_key, record_property) -> None:
    """Opening a dump and the first lookups, in this process (printed):
    fast enough that nothing needs a progress bar."""
    import drgn

    t0 = time.perf_counter()
    prog = drgn.Program()
    prog.set_core_dump(str(vmcore_path))
    drgn_btfvars.enable(prog)
    prog["init_task"].comm
    t1 = time.perf_counter()
    prog.stack_trace(1)
    t2 = time.perf_counter()
    line = f"{vmcore_key}: open + first global {t1 - t0:.3f} s, first stack trace {t2 - t1:.3f} s"
    print("\n" + line)
    record_property("first steps", line)
