"""The parity comparison itself (vmcores/commands.py compare()): each
normalisation accepts only what it documents, and anything else is a
difference. Synthetic outputs; a stand-in program answers symbol lookups."""

from typing import List, NamedTuple

import drgn
import pytest

from vmcores.commands import compare


class Sym(NamedTuple):
    name: str
    address: int
    size: int = 0x100


class FakeProg:
    """Kernel symbols entry_SYSCALL_64 (function) with a label inside it, and
    a module symbol kjournald2 at 0xffffffffc0001000."""

    symbols_by_name = {
        "entry_SYSCALL_64": [Sym("entry_SYSCALL_64", 0xffffffff81000000)],
        "entry_SYSCALL_64_after_hwframe": [Sym("entry_SYSCALL_64_after_hwframe",
                                               0xffffffff81000040)],
        "other_function": [Sym("other_function", 0xffffffff82000000)],
    }

    def symbols(self, name: str) -> List[Sym]:
        if name not in self.symbols_by_name:
            raise LookupError(name)
        return self.symbols_by_name[name]

    def symbol(self, address: int) -> Sym:
        if 0xffffffffc0001000 <= address < 0xffffffffc0002000:
            return Sym("kjournald2", 0xffffffffc0001000)
        raise LookupError(hex(address))

    def __init__(self) -> None:
        self._prog = drgn.Program(drgn.host_platform)
        self._jbd2 = self._prog.relocatable_module("jbd2", 0xffffffffc0000000, create=True)

    def module(self, address: int) -> object:
        if 0xffffffffc0000000 <= address < 0xffffffffc0010000:
            return self._jbd2
        raise LookupError(hex(address))


BT_DWARF = """PID: 1  TASK: ffff8880  CPU: 0  COMMAND: "init"
 #0 (inline)           context_switch
 #1 [ffffc900] __schedule at ffffffff81800000
 #2 [ffffc908] 0xffffffffc0001234 at ffffffffc0001234 [jbd2]
 #3 [ffffc910] entry_SYSCALL_64 at ffffffff81000050
"""
BT_BTF = """PID: 1  TASK: ffff8880  CPU: 0  COMMAND: "init"
 #0 [ffffc900] __schedule at ffffffff81800000
 #1 [ffffc908] kjournald2 at ffffffffc0001234 [jbd2]
 #2 [ffffc910] entry_SYSCALL_64_after_hwframe at ffffffff81000050
"""


def test_bt_normalisations() -> None:
    c = compare("crash:bt 1", BT_DWARF, BT_BTF, FakeProg())
    assert c.status == "normalised", c.diff
    assert set(c.rules) == {"inline frame", "module symbol name for an address",
                            "kallsyms label inside the DWARF function"}


@pytest.mark.parametrize("btf", [
    BT_BTF.replace("81800000", "81800008"),                  # another PC
    BT_BTF.replace("entry_SYSCALL_64_after_hwframe", "other_function"),  # not a label inside
    BT_BTF.replace("kjournald2", "jbd2_journal_start"),      # not the module symbol there
    BT_BTF.replace("[ffffc900]", "[ffffc9ff]"),              # another stack pointer
])
def test_bt_differences_fail(btf: str) -> None:
    assert compare("crash:bt 1", BT_DWARF, btf, FakeProg()).status == "different"


def test_inline_frames_only_in_bt() -> None:
    """Dropping "(inline)" lines is for stack traces only."""
    d = "a\n #0 (inline)           x\nb\n"
    assert compare("crash:ps", d, "a\nb\n", FakeProg()).status == "partial"
    assert compare("crash:bt 2", d, "a\nb\n", FakeProg()).status == "normalised"


def test_sys_file_paths() -> None:
    d = "      KERNEL: /usr/lib/debug/vmlinux  [TAINTED]\n    DUMPFILE: /tmp/a/x.vmcore\n"
    b = "      KERNEL: [TAINTED]\n    DUMPFILE: /tmp/b/x.vmcore\n"
    assert compare("crash:sys", d, b, FakeProg()).status == "normalised"
    assert compare("crash:sys", d, b.replace("TAINTED", "CLEAN"), FakeProg()).status == "different"
    assert compare("crash:mod", d, b, FakeProg()).status == "different"


def test_zero_length_array() -> None:
    d = "\t.x = (u8 [0]){},\n"
    assert compare("crash:task 1", d, "\t.x = (u8 []){},\n", FakeProg()).status == "normalised"
    assert compare("crash:task 1", d, "\t.x = (u8 [1]){},\n", FakeProg()).status == "different"


def test_errors_and_partial_output() -> None:
    d = "line 1\nline 2\n"
    assert compare("helper:x", d, d, FakeProg()).status == "same"
    assert compare("helper:x", d, "ERROR: LookupError: nope", FakeProg()).status == "error"
    assert compare("helper:x", d, "line 1\nERROR: LookupError: nope", FakeProg()).status == "partial"
    assert compare("helper:x", d, "line 1\n", FakeProg()).status == "partial"
    assert compare("helper:x", d, "line 1\nline 3\n", FakeProg()).status == "different"
    assert compare("helper:x", "ERROR: KeyError: x", d, FakeProg()).status == "different"


ARM_DWARF = """PID: 1  TASK: ffff8880  CPU: 0  COMMAND: "init"
 #0 [ffff80008002bb20] __schedule at ffff957dff14c638
    ffff80008002bb00:  ffff80008002bb60 209f957dff14c638
 #1 [ffff80008002be40] el0_svc_common at ffff957dfe228430
"""
ARM_BTF = """PID: 1  TASK: ffff8880  CPU: 0  COMMAND: "init"
 #0 [????????????????] __schedule at ffff957dff14c638
 #1 [????????????????] el0_svc_common.constprop.0 at ffff957dfe228430
"""


def test_frame_pointer_unwinding() -> None:
    """arm64 without CFI: unknown stack pointers (and so no stack words),
    GCC clone names."""
    c = compare("crash:bt -f 1", ARM_DWARF, ARM_BTF, FakeProg())
    assert c.status == "normalised", c.diff
    assert set(c.rules) == {"stack pointer unknown (frame-pointer unwinding)",
                            "stack words of frames without a stack pointer",
                            "GCC clone suffix in the kallsyms name"}
    # Stack words are dropped only when BTF has no stack pointer.
    known_sp = ARM_BTF.replace("[????????????????] __schedule", "[ffff80008002bb20] __schedule")
    assert compare("crash:bt -f 1", ARM_DWARF, known_sp.replace("?" * 16, "ffff80008002be40"),
                   FakeProg()).status not in ("same", "normalised")
    # Not a clone suffix; not an unknown stack pointer.
    for bad in (ARM_BTF.replace(".constprop.0", ".other"), ARM_BTF.replace("????", "ffff", 1)):
        assert compare("crash:bt -f 1", ARM_DWARF, bad, FakeProg()).status == "different"
