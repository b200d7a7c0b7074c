"""BTF-only drgn against the DWARF truth, on every committed real vmcore.

Each test opens a committed dump with BTF only (no DWARF anywhere) and
compares with what drgn + the kernel's DWARF gave on the same dump. Counts
per kernel are printed (``pytest -s``) and written to the junit properties.
A mismatch — BTF giving a different address, type or layout than DWARF —
fails. Known losses (documented in :mod:`drgn_btfvars.verify`) and "not
found" are reported, with floors on coverage.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest
from drgn import FindObjectFlags, Object, Program

from drgn_btfvars import verify
from drgn_btfvars.finders import BOOTSTRAP_DECLS

from .conftest import BtfSession

# Floors, per kernel, of what BTF must type. Mismatches are always 0.
MIN_VARIABLE_COVERAGE = 0.96  # of the globals DWARF types (variable BTF mode)
MIN_FUNCTION_COVERAGE = 0.98


def _report(record_property, label: str, report: verify.Report) -> None:
    print(f"\n[{label}] {report.summary()}")
    for bucket in ("mismatched", "known_loss"):
        if report.count(bucket):
            print(f"  {bucket}: {dict(report.reason_counts(bucket))}")
    record_property(label, report.summary())


def test_variables_with_variable_btf(vars_session: BtfSession, vmcore_truth, vmcore_key,
                                     record_property) -> None:
    """Every global: the address and type BTF gives equal DWARF's."""
    kb = vars_session.kb
    report = verify.compare_variables(vmcore_truth["variables"], kb.variables)
    _report(record_property, f"{vmcore_key} variables (variable BTF)", report)
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    covered = report.count("matched") + report.count("known_loss")
    assert covered / report.total >= MIN_VARIABLE_COVERAGE, report.summary()
    assert not kb.warnings, kb.warnings


def test_struct_layouts(vars_session: BtfSession, vmcore_truth, vmcore_key,
                        record_property) -> None:
    """Every struct/union DWARF reaches: size, members, offsets, bit fields, types."""
    report = verify.compare_types(vmcore_truth["types"], vars_session.kb.types_named)
    _report(record_property, f"{vmcore_key} struct/union layouts", report)
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    assert report.count("not_found") == 0, report.reasons("not_found")


def test_enums(vars_session: BtfSession, vmcore_truth, vmcore_key, record_property) -> None:
    report = verify.compare_enums(vmcore_truth["enums"], vars_session.kb.types_named)
    _report(record_property, f"{vmcore_key} enums", report)
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    assert report.count("not_found") == 0, report.reasons("not_found")


def test_enum_constants(vars_session: BtfSession, vmcore_truth) -> None:
    prog = vars_session.prog
    checked = 0
    for name, e in vmcore_truth["enums"].items():
        for ename, value in e["enumerators"][:3]:
            obj = prog.constant(ename)
            assert obj.type_.kind.name == "ENUM"
            # Constants may be defined by several enums; the value must be one of them.
            if obj.type_.type_name() == name:
                assert obj.value_() == value, (name, ename)
                checked += 1
    assert checked > 100


def test_typedefs(vars_session: BtfSession, vmcore_truth) -> None:
    prog = vars_session.prog
    bad = []
    for name, target in vmcore_truth["typedefs"].items():
        if not isinstance(target, str):
            continue
        try:
            t = prog.type(name)
        except LookupError:
            bad.append((name, "not found"))
            continue
        got = t.type.type_name()
        if got != target and not verify.is_flattened_array(target, got) \
                and not verify.is_zero_length_array(target, got):
            bad.append((name, target, got))
    assert not bad, bad[:20]


def test_functions(vars_session: BtfSession, vmcore_truth, vmcore_key, record_property) -> None:
    """Function prototypes at their kallsyms address, as DWARF types them."""
    prog = vars_session.prog
    report = verify.compare_functions(
        vmcore_truth["functions"],
        lambda n: vars_session.kb.object_finder(prog, n, FindObjectFlags.FUNCTION, None),
    )
    _report(record_property, f"{vmcore_key} functions", report)
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    covered = report.count("matched") + report.count("known_loss")
    assert covered / report.total >= MIN_FUNCTION_COVERAGE, report.summary()


def test_stock_kernel_mode(stock_session: BtfSession, vmcore_truth, vmcore_key,
                           record_property) -> None:
    """No variable BTF at all: per-CPU variables are typed (from vmlinux
    BTF), and no other global is ever given a type DWARF disagrees with.

    pahole describes ``.data..percpu`` only: a per-CPU variable of another
    section (``fixed_percpu_data`` in ``.data..percpu..first`` on 6.1) is not
    found, never guessed."""
    kb = stock_session.kb
    percpu = verify.compare_variables(vmcore_truth["variables"], kb.variables,
                                      sections=["percpu"])
    _report(record_property, f"{vmcore_key} per-CPU variables (stock)", percpu)
    assert percpu.count("mismatched") == 0, percpu.reasons("mismatched")
    assert percpu.count("matched") >= 0.99 * percpu.total, percpu.reasons("not_found")
    others = verify.compare_variables(vmcore_truth["variables"], kb.variables,
                                      sections=["data", "bss", "rodata", "init", "other"])
    _report(record_property, f"{vmcore_key} other globals (stock)", others)
    assert others.count("mismatched") == 0, others.reasons("mismatched")


def test_bootstrap_declarations(vmcore_truth) -> None:
    """The fixed declarations used before any variable BTF is found are what
    DWARF says."""
    by_name = {v["name"]: v for v in vmcore_truth["variables"]}
    for name, decl in BOOTSTRAP_DECLS.items():
        assert by_name[name]["type"] == decl, name


def test_jiffies(vars_session: BtfSession, vmcore_truth) -> None:
    """``jiffies`` (a linker alias of ``jiffies_64``) as DWARF-based drgn shows it."""
    prog = vars_session.prog
    jiffies = prog["jiffies"]
    assert jiffies.type_.type_name() == "volatile unsigned long"
    j64 = {v["name"]: v for v in vmcore_truth["variables"]}["jiffies_64"]
    assert jiffies.address_ == j64["address"]
    assert jiffies.value_() == j64["value"]


def _frame_names(prog: Program, task: Object) -> List[Any]:
    out = []
    for f in prog.stack_trace(task):
        out.append((f.name or hex(f.pc), f.pc))
    return out


def test_stack_traces(vars_session: BtfSession, vmcore_truth, vmcore_key,
                      record_property) -> None:
    """Every task's stack trace: same program counters as with DWARF, same
    function names except where DWARF itself has none (module code without
    debug info, which we name from module kallsyms), where kallsyms has an
    assembly label inside the function DWARF names, or where the function is a
    compiler clone (kallsyms ``el0_svc_common.constprop.0``, DWARF
    ``el0_svc_common``)."""
    from drgn.helpers.linux.pid import for_each_task

    prog = vars_session.prog
    truth = {(t["pid"], t["comm"]): t for t in vmcore_truth["tasks"]}
    same = labels = module_names = clones = 0
    problems = []
    for task in for_each_task(prog):
        key = (task.pid.value_(), task.comm.string_().decode())
        t = truth.get(key)
        if t is None or "frames" not in t:
            continue
        inline = set(t.get("inline", []))
        expect = [(n, pc) for i, (n, pc) in enumerate(zip(t["frames"], t["pcs"])) if i not in inline]
        got = _frame_names(prog, task)
        if [pc for _, pc in got] != [pc for _, pc in expect]:
            problems.append((key, "pcs", got, expect))
            continue
        for (gname, pc), (dname, _) in zip(got, expect):
            if gname == dname:
                same += 1
            elif dname.startswith("0x") and not gname.startswith("0x"):
                module_names += 1
            elif not dname.startswith("0x") and _is_label_inside(prog, gname, dname, pc):
                labels += 1
            elif _is_clone_of(gname, dname):
                clones += 1
            else:
                problems.append((key, gname, dname))
    summary = (f"{vmcore_key} stack frames: {same} same, {labels} kallsyms labels, "
               f"{module_names} named only by module kallsyms, {clones} compiler clones, "
               f"{len(problems)} different")
    print("\n" + summary)
    record_property("stack frames", summary)
    assert not problems, problems[:5]
    assert same > 100


def _is_clone_of(symbol: str, function: str) -> bool:
    """Whether kallsyms' ``symbol`` is a GCC clone of the DWARF ``function``
    (suffixes ``.constprop.N``, ``.isra.N``, ``.part.N``, ``.cold``)."""
    return re.fullmatch(re.escape(function) + r"(\.(constprop|isra|part|cold)(\.\d+)?)+",
                        symbol) is not None


def _is_label_inside(prog: Program, label: str, function: str, pc: int) -> bool:
    try:
        lab = prog.symbols(label)
        fn = prog.symbols(function)
    except LookupError:
        return False
    return any(f.address <= lab_sym.address <= pc for f in fn for lab_sym in lab)


def test_modules(vars_session: BtfSession, vmcore_truth) -> None:
    """drgn creates its Module objects from BTF-typed ``struct module``/``modules``."""
    prog = vars_session.prog
    prog.load_default_debug_info()
    names = {m.name for m in prog.modules()}
    want = {m["name"] for m in vmcore_truth["modules"]}
    assert want <= names, want - names
    for m in vmcore_truth["modules"]:
        mod = prog.module(m["name"]) if hasattr(prog, "module") else None
        if mod is not None and mod.address_ranges:
            assert any(start <= m["base"] < end for start, end in mod.address_ranges)


def test_helpers(vars_session: BtfSession, vmcore_truth) -> None:
    """A handful of drgn helpers print what they print with DWARF."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "vmcores"))
    import truth as truth_mod  # vmcores/truth.py: the same code made the truth

    got = truth_mod.helper_outputs(vars_session.prog)
    want = vmcore_truth["helpers"]
    diff = {k: (want[k], got.get(k)) for k in want if got.get(k) != want[k]}
    assert not diff, diff


SCALAR_KINDS = ("INT", "BOOL", "ENUM", "FLOAT", "POINTER")


def _scalar(t) -> bool:
    while t.kind.name == "TYPEDEF":
        t = t.type
    return t.kind.name in SCALAR_KINDS


def test_values_read_through_btf(vars_session: BtfSession, vmcore_truth, vmcore_key,
                                 record_property) -> None:
    """Every scalar global read through its BTF object has DWARF's value; a
    per-CPU one has DWARF's value on each CPU (``per_cpu()``); one that DWARF
    could not read (arm64 unmaps the freed ``.init`` memory) raises
    ``FaultError``, and the session goes on."""
    from drgn import FaultError
    from drgn.helpers.linux.percpu import per_cpu

    kb = vars_session.kb
    equal = faults = percpu = 0
    bad = []
    for v in vmcore_truth["variables"]:
        objs = [o for o in kb.variables(v["name"]) if o.address_ == v["address"]]
        if not objs or not _scalar(objs[0].type_):
            continue
        obj = objs[0]
        if v["section"] == "percpu":
            want = v.get("percpu_values")
            if want is None:
                continue
            got = []
            for cpu in range(len(want)):
                try:
                    got.append(per_cpu(obj, cpu).value_())
                except FaultError:
                    got.append(None)
            got = [int(x) if isinstance(x, bool) else x for x in got]
            if got != want:
                bad.append((v["name"], want, got))
            percpu += 1
            continue
        try:
            got = obj.value_()
        except FaultError:
            got = None
            faults += 1
        if isinstance(got, bool):
            got = int(got)
        if got != v["value"]:
            bad.append((v["name"], v["section"], v["value"], got))
        elif got is not None:
            equal += 1
    summary = (f"{vmcore_key} scalar values: {equal} equal, {percpu} per-CPU equal on every CPU, "
               f"{faults} unreadable as with DWARF (FaultError), {len(bad)} different")
    print("\n" + summary)
    record_property("values", summary)
    assert not bad, bad[:10]
    assert equal > 1000 and percpu > 10


def test_base_types(vars_session: BtfSession, vmcore_truth, vmcore_key) -> None:
    """``char`` (unsigned on arm64, and on x86 since 6.2), ``int``, ``long`` …
    have DWARF's size and signedness."""
    want = vmcore_truth.get("base_types")
    if want is None:
        from vmcores import fixtures

        dwarf = fixtures.dwarf_program(vmcore_key)
        if dwarf is None:
            pytest.skip("the truth predates base_types and the -dbg vmlinux is not cached")
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "vmcores"))
        import truth as truth_mod

        want = truth_mod.base_types(dwarf)
    prog = vars_session.prog
    got = {}
    for name in want:
        t = prog.type(name)
        got[name] = [t.size, bool(t.is_signed) if t.kind.name == "INT" else None]
    assert got == want


def test_refuses_other_builds_variable_btf(vmcore_path, vmcore_key, vmcore_truth) -> None:
    """A variable BTF made for another kernel build is refused, naming both.
    The session goes on as on a stock kernel: a global of the degraded-mode
    table (``jiffies_64``) has DWARF's type, any other is not found."""
    from drgn_btfvars.decls import DECLARATIONS

    from .conftest import open_btf, vars_btf_bytes, other_key_with_vars

    other = other_key_with_vars(vmcore_key)
    if other is None:
        pytest.skip("needs a committed variable BTF of another kernel")
    session = open_btf(vmcore_path, vars_btf=vars_btf_bytes(other))
    declared = {d.name for d in DECLARATIONS}
    undeclared = next(v["name"] for v in vmcore_truth["variables"]
                      if v["section"] == "data" and v["name"] not in declared
                      and not v.get("repeated"))
    with pytest.raises(LookupError):
        session.prog[undeclared]
    assert session.prog["jiffies_64"].type_.type_name() == "u64"
    msg = " ".join(session.kb.warnings)
    assert "refused" in msg, msg
    assert session.kb.vars() is None


def test_plugin_entry_point(vmcore_path, vmcore_key, tmp_path) -> None:
    """``drgn -c vmcore`` with the plugin auto-loaded: typed globals, no
    "missing debugging symbols" noise."""
    from .conftest import fake_module_loaded, vars_btf_bytes, vars_btf_file

    env = dict(os.environ)
    env.pop("DRGN_BTFVARS_DISABLE", None)
    env.pop("DRGN_DISABLE_PLUGINS", None)
    if not fake_module_loaded(vmcore_key):
        if vars_btf_file(vmcore_key) is None:
            pytest.skip(f"{vmcore_key}: no variable BTF")
        vf = tmp_path / "vars.btf"
        vf.write_bytes(vars_btf_bytes(vmcore_key))
        env["DRGN_BTFVARS_VARS"] = str(vf)
    code = "print(prog['init_task'].comm.string_().decode()); print(prog['jiffies'].type_)"
    proc = subprocess.run(
        [sys.executable, "-m", "drgn", "-q", "-c", str(vmcore_path), "-e", code],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["swapper/0", "volatile unsigned long"], proc.stdout
    assert "missing debugging symbols" not in proc.stderr, proc.stderr
