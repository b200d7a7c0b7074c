"""Kernels older than 6.0, whose VMCOREINFO does not locate kallsyms (Linux
6.0 added the ``SYMBOL(kallsyms_*)`` entries, commit 5fd8fea935a1).

No pre-6.0 dump is committed: these tests SIMULATE one by removing the
``SYMBOL(kallsyms_*)`` lines from the VMCOREINFO note of a copy of a
committed dump (and ``SYMBOL(_stext)`` too, which Linux has exported only
since 5.13), then give the vmlinux symbols as a file:

* the real System.map of the build (the ``-dbg`` package; when cached);
* a System.map made from the dump's own kallsyms minus the KASLR offset
  (the same content, for machines without the -dbg package);
* a ``/proc/kallsyms`` as saved on the running system (the dump's kallsyms).

Each must give the very symbols drgn reads from the untouched dump's
kallsyms, and the sessions the same variables and functions; another
build's file must be refused.
"""

import glob
import os
from pathlib import Path
from typing import Dict, List

import drgn
import pytest
from drgn import FindObjectFlags, SymbolBinding, SymbolKind

from drgn_btfvars import verify
from vmcores import fixtures as vmcore_fixtures

from .dumps import ScratchDump, dwarf_pcs, kernel_pcs, open_session


def drop_kallsyms(text: str, stext: bool = False) -> str:
    """VMCOREINFO as a kernel before 6.0 writes it (before 5.13 with ``stext``)."""
    drop = ("SYMBOL(kallsyms_",) + (("SYMBOL(_stext)",) if stext else ())
    return "".join(line for line in text.splitlines(True) if not line.startswith(drop))


@pytest.fixture(scope="module")
def dump_symbols() -> Dict[str, List[drgn.Symbol]]:
    """drgn's own kallsyms of each untouched dump (what the files must equal)."""
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    out = {}
    for key in vmcore_fixtures.available():
        prog = drgn.Program()
        prog.set_core_dump(str(vmcore_fixtures.vmcore_path(key)))
        out[key] = load_vmlinux_kallsyms(prog)(prog, None, None, False)
    return out


def _facts(obj):
    return None if obj is None else (obj.address_, obj.type_.type_name())


@pytest.fixture(scope="module")
def reference():
    """Per kernel, on the untouched dump: the variable report's summary and
    every function's address and type."""

    class Lazy(dict):
        def __missing__(self, key):
            truth = vmcore_fixtures.truth(key)
            prog, kb = open_session(vmcore_fixtures.vmcore_path(key))
            summary = verify.compare_variables(truth["variables"], kb.variables).summary()
            funcs = {n: _facts(kb.object_finder(prog, n, FindObjectFlags.FUNCTION, None))
                     for n in truth["functions"]}
            self[key] = (summary, funcs)
            return self[key]

    return Lazy()


def _letter(sym: drgn.Symbol) -> str:
    """A type letter for a symbol, as /proc/kallsyms prints it."""
    if sym.binding == SymbolBinding.WEAK:
        return "V" if sym.kind == SymbolKind.OBJECT else "W"
    c = {SymbolKind.FUNC: "t", SymbolKind.OBJECT: "d"}.get(sym.kind, "a")
    return c.upper() if sym.binding == SymbolBinding.GLOBAL else c


def write_kallsyms(path: Path, syms: List[drgn.Symbol], minus: int = 0) -> Path:
    """A /proc/kallsyms text of ``syms`` (with ``minus``: a System.map,
    kernel-half addresses moved back to their link addresses)."""
    with open(path, "w") as f:
        for s in sorted(syms, key=lambda s: s.address):
            a = (s.address - minus) & (2**64 - 1) if s.address >> 63 else s.address
            f.write(f"{a:016x} {_letter(s)} {s.name}\n")
        f.write("ffffffffc0000000 t some_module_symbol\t[some_module]\n")  # ignored
    return path


def real_system_map(key: str):
    m = glob.glob(os.path.expanduser(
        f"~/.cache/drgn-btfvars/kernels/{key}/dbg/usr/lib/debug/**/System.map*"), recursive=True)
    return Path(m[0]) if m and os.path.getsize(m[0]) > 4096 else None


def symbols_equal(kb, want: List[drgn.Symbol]) -> None:
    """Every kallsyms symbol is in the file's index at the same address."""
    got: Dict[str, set] = {}
    for s in kb.kallsyms()(kb.prog, None, None, False):
        got.setdefault(s.name, set()).add(s.address)
    missing = [s.name for s in want if s.address not in got.get(s.name, ())]
    assert not missing, missing[:10]


@pytest.fixture
def old_dump(scratch: ScratchDump) -> ScratchDump:
    scratch.edit_vmcoreinfo(drop_kallsyms)
    return scratch


def test_without_a_file_says_how(old_dump: ScratchDump, vmcore_truth) -> None:
    prog, kb = open_session(old_dump.path)
    assert kb.kallsyms() is None
    msg = kb.warnings[0]
    assert msg.startswith(f"kallsyms unavailable: {vmcore_truth['kernel']['release']}: this "
                          "kernel's VMCOREINFO has no kallsyms (added in Linux 6.0"), msg
    assert "kallsyms=PATH" in msg and "DRGN_BTFVARS_KALLSYMS=PATH" in msg
    with pytest.raises(LookupError):  # nothing to locate the BTF with: nothing guessed
        prog.type("struct task_struct")


@pytest.mark.parametrize("kind", ["saved-kallsyms", "derived-system-map", "system-map"])
def test_symbol_file(old_dump: ScratchDump, vmcore_key, vmcore_truth, dump_symbols, tmp_path,
                     kind: str, reference, record_property) -> None:
    """With a symbol file the session is what it is on the untouched dump:
    the same symbols, every global and function at the same address with
    the same type, DWARF's stack PCs."""
    syms = dump_symbols[vmcore_key]
    kaslr = vmcore_truth["kernel"]["kaslr_offset"]
    if kind == "system-map":
        path = real_system_map(vmcore_key)
        if path is None:
            pytest.skip(f"no -dbg package System.map cached for {vmcore_key}")
    else:
        path = write_kallsyms(tmp_path / kind, syms, kaslr if kind == "derived-system-map" else 0)
    prog, kb = open_session(old_dump.path, kallsyms=path)
    symbols_equal(kb, syms)
    want_how = "a /proc/kallsyms of this boot" if kind == "saved-kallsyms" else \
        f"link addresses (System.map) + KASLR offset {kaslr:#x}"
    assert want_how in kb._kallsyms_source, kb._kallsyms_source

    # The same answers as on the untouched dump (the fidelity suite's session).
    ref_summary, ref_funcs = reference[vmcore_key]
    variables = verify.compare_variables(vmcore_truth["variables"], kb.variables)
    assert variables.summary() == ref_summary
    assert variables.count("mismatched") == 0, variables.reasons("mismatched")
    funcs = {n: kb.object_finder(prog, n, FindObjectFlags.FUNCTION, None)
             for n in vmcore_truth["functions"]}
    differ = [n for n, obj in funcs.items() if _facts(obj) != ref_funcs[n]]
    assert not differ, [(n, _facts(funcs[n]), ref_funcs[n]) for n in differ[:5]]
    report = verify.compare_functions(vmcore_truth["functions"], funcs.get)
    assert report.count("mismatched") == 0, report.reasons("mismatched")
    print(f"\n[{vmcore_key} pre-6.0 simulated, {kind}] variables {variables.summary()}; "
          f"functions {report.summary()}")
    record_property(f"pre-6.0 {kind}", f"{variables.summary()}; {report.summary()}")
    assert kernel_pcs(prog, 1) == dwarf_pcs(vmcore_truth, 1)
    assert not [w for w in kb.warnings if "kallsyms" in w], kb.warnings


def test_environment_variable(old_dump: ScratchDump, vmcore_key, vmcore_truth, dump_symbols,
                              tmp_path, monkeypatch) -> None:
    path = write_kallsyms(tmp_path / "kallsyms", dump_symbols[vmcore_key])
    monkeypatch.setenv("DRGN_BTFVARS_KALLSYMS", str(path))
    prog, kb = open_session(old_dump.path)
    jiffies = next(v for v in vmcore_truth["variables"] if v["name"] == "jiffies")
    assert (prog["jiffies"].address_, prog["jiffies"].value_()) == \
        (jiffies["address"], jiffies["value"])
    assert str(path) in kb.status()["kallsyms"]


def test_before_5_13(scratch: ScratchDump, vmcore_key, vmcore_truth, dump_symbols,
                     tmp_path) -> None:
    """Without ``SYMBOL(_stext)`` either: ``init_uts_ns`` places the file."""
    scratch.edit_vmcoreinfo(lambda text: drop_kallsyms(text, stext=True))
    kaslr = vmcore_truth["kernel"]["kaslr_offset"]
    path = write_kallsyms(tmp_path / "System.map", dump_symbols[vmcore_key], kaslr)
    prog, kb = open_session(scratch.path, kallsyms=path)
    symbols_equal(kb, dump_symbols[vmcore_key])
    assert "checked init_uts_ns" in kb._kallsyms_source
    assert prog["init_task"].comm.string_() == b"swapper/0"


def test_other_builds_file_is_refused(old_dump: ScratchDump, vmcore_key, vmcore_truth,
                                      dump_symbols, tmp_path) -> None:
    """Another kernel's System.map (or kallsyms) is refused, naming the file
    and this build, and nothing is taken from it."""
    other = next((k for k in dump_symbols if k != vmcore_key), None)
    if other is None:
        pytest.skip("needs a second committed dump")
    kaslr = vmcore_fixtures.truth(other)["kernel"]["kaslr_offset"]
    path = write_kallsyms(tmp_path / "System.map", dump_symbols[other], kaslr)
    prog, kb = open_session(old_dump.path, kallsyms=path)
    assert kb.kallsyms() is None
    k = vmcore_truth["kernel"]
    msg = kb.warnings[0]
    assert f"{path} is from another kernel build" in msg and k["release"] in msg \
        and k["build_id"] in msg and "has no kallsyms" in msg, msg
    with pytest.raises(LookupError):
        prog.type("struct task_struct")


def test_file_ignored_on_6_0_when_wrong(scratch: ScratchDump, vmcore_key, dump_symbols,
                                        tmp_path) -> None:
    """On a kernel whose VMCOREINFO has kallsyms, a wrong file is refused
    with a warning and the kernel's own kallsyms are used."""
    other = next((k for k in dump_symbols if k != vmcore_key), None)
    if other is None:
        pytest.skip("needs a second committed dump")
    path = write_kallsyms(tmp_path / "kallsyms", dump_symbols[other])
    prog, kb = open_session(scratch.path, kallsyms=path)
    symbols_equal(kb, dump_symbols[vmcore_key])
    assert kb._kallsyms_source == "VMCOREINFO"
    assert any(w.startswith(f"symbol file refused: {path} is from another kernel build")
               for w in kb.warnings), kb.warnings
