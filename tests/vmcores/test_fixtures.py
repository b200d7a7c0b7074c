"""Sanity of the committed vmcore fixtures: dump, manifest and ground truth agree.

These tests need no debug info; they pass whether or not our plugin is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from vmcores import fixtures

drgn = pytest.importorskip("drgn")

NAMED_PROCESSES = {"sleep", "ticker", "cat", "tail", "init"}
STOCK_MODULES = {"qemu_fw_cfg", "loop", "ext4", "jbd2"}


@pytest.fixture(scope="module")
def prog(vmcore_path: Path) -> "drgn.Program":
    """The dump opened in drgn without any debug info."""
    p = drgn.Program()
    p.set_core_dump(str(vmcore_path))
    return p


def test_manifest(vmcore_key: str, vmcore_manifest: Dict[str, Any]) -> None:
    m = vmcore_manifest
    assert m["key"] == vmcore_key
    for field in ("release", "version", "qemu_args", "memory", "date", "vmcore", "extra_modules"):
        assert field in m, field
    assert len(m["vmcore"]["sha256"]) == 64
    assert (fixtures.fixture_dir(vmcore_key) / "vmcore.zst").stat().st_size <= 30 * 1000 * 1000


def test_dump_sha256_and_size(vmcore_path: Path, vmcore_manifest: Dict[str, Any]) -> None:
    # vmcore_path() checks the sha256 while decompressing; the size must match too.
    assert vmcore_path.stat().st_size == vmcore_manifest["vmcore"]["size"]


def test_vmcoreinfo(vmcore_path: Path, vmcore_manifest: Dict[str, Any],
                    vmcore_truth: Dict[str, Any]) -> None:
    info = fixtures.vmcoreinfo(vmcore_path)
    assert info["OSRELEASE"] == vmcore_manifest["release"]
    assert info["OSRELEASE"] == vmcore_truth["kernel"]["release"]
    assert int(info["KERNELOFFSET"], 16) == vmcore_truth["kernel"]["kaslr_offset"]
    if "BUILD-ID" in info and vmcore_truth["kernel"]["build_id"]:
        assert info["BUILD-ID"] == vmcore_truth["kernel"]["build_id"]


def test_opens_without_debug_info(prog: "drgn.Program", vmcore_truth: Dict[str, Any]) -> None:
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
    # The dump's architecture (from its ELF header) is the one the truth recorded
    # with DWARF: "x86_64" or "aarch64".
    assert prog.platform.arch.name.lower() == vmcore_truth["kernel"]["arch"]
    from drgn.helpers.linux.boot import kaslr_offset

    assert kaslr_offset(prog) == vmcore_truth["kernel"]["kaslr_offset"]
    assert kaslr_offset(prog) != 0, "KASLR should be on"


def test_kallsyms_match_truth(prog: "drgn.Program", vmcore_truth: Dict[str, Any]) -> None:
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    index = load_vmlinux_kallsyms(prog)
    syms = index(prog, None, None, False)
    assert len(syms) == vmcore_truth["counts"]["kallsyms_symbols"]
    by_name: Dict[str, set] = {}
    for s in syms:
        by_name.setdefault(s.name, set()).add(s.address)
    for v in vmcore_truth["variables"][::97]:
        assert v["address"] in by_name[v["name"]], v["name"]


def test_truth_is_rich(vmcore_truth: Dict[str, Any]) -> None:
    t = vmcore_truth
    assert len(t["variables"]) > 10000
    assert len(t["functions"]) > 10000
    assert len(t["types"]) > 1000
    assert len(t["enums"]) > 100
    names = {v["name"] for v in t["variables"]}
    for n in ("init_task", "jiffies_64", "modules", "runqueues", "nr_cpu_ids"):
        assert n in names, n
    sections = {v["section"] for v in t["variables"]}
    assert {"data", "bss", "rodata", "percpu"} <= sections
    assert t["types"]["struct list_head"]["members"][0][:2] == ["next", 0]
    assert t["kernel"]["vmlinux_btf_sha256"] == t["kernel"]["vmlinux_btf_in_memory_sha256"]
    assert len(t["data_symbols_unresolved"]) == t["counts"]["data_symbols_unresolved"]


def test_truth_tasks_modules_helpers(vmcore_truth: Dict[str, Any],
                                     vmcore_manifest: Dict[str, Any]) -> None:
    t = vmcore_truth
    comms = {task["comm"] for task in t["tasks"]}
    assert NAMED_PROCESSES <= comms
    traced = [task for task in t["tasks"] if task["comm"] == "sleep"]
    assert traced and all("schedule" in task.get("frames", []) for task in traced)
    mods = {m["name"] for m in t["modules"]}
    assert STOCK_MODULES <= mods
    assert set(vmcore_manifest["stock_modules"]) <= mods
    for extra in vmcore_manifest["extra_modules"]:
        assert extra in mods
        assert extra in t["kernel"]["modules_btf"], "extra module BTF not accepted"
    h = t["helpers"]
    assert h["uname.release"] == t["kernel"]["release"]
    assert " ext4" in h["mounts"]
    assert "task_struct" in h["slab_caches"] or "kmalloc-64" in h["slab_caches"]
    assert not any(v.startswith("ERROR:") for v in h.values()), h


def test_scalar_values_read_back(prog: "drgn.Program", vmcore_truth: Dict[str, Any]) -> None:
    """Integer values in the truth are the bytes in the dump at the variable's address."""
    checked = 0
    order = "little" if prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN else "big"
    for v in vmcore_truth["variables"]:
        if (v["section"] not in ("data", "rodata", "bss") or not isinstance(v["value"], int)
                or v["size"] not in (1, 2, 4, 8)):
            continue
        raw = prog.read(v["address"], v["size"])
        signed = v["value"] < 0
        assert int.from_bytes(raw, order, signed=signed) == v["value"], v
        checked += 1
        if checked >= 500:
            break
    assert checked >= 100


def test_debug_vmlinux_never_downloads(vmcore_key: str) -> None:
    p = fixtures.debug_vmlinux(vmcore_key)
    assert p is None or p.is_file()


def test_dwarf_program_agrees(vmcore_key: str, vmcore_truth: Dict[str, Any]) -> None:
    if fixtures.debug_vmlinux(vmcore_key) is None:
        pytest.skip("the -dbg vmlinux is not in the cache (python3 vmcores/kernels.py KEY dbg)")
    p = fixtures.dwarf_program(vmcore_key)
    for name in ("init_task", "jiffies_64", "nr_cpu_ids"):
        obj = p.object(name)
        row = next(v for v in vmcore_truth["variables"] if v["name"] == name)
        assert obj.address_ == row["address"]
        assert obj.type_.type_name() == row["type"]
