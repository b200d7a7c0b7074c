"""drgn plugin entry point and the public API to enable BTF-based debugging.

drgn calls :func:`drgn_prog_set` for every program it creates (entry point
group ``drgn.plugins``); it enables the BTF finders only for Linux kernel
programs. Scripts and notebooks call :func:`enable` on a program they made.
"""

import logging
import os
from typing import Optional, Union

from drgn import Program, ProgramFlags

from drgn_btfvars.btf import Btf
from drgn_btfvars.finders import KernelBtf

__all__ = ("drgn_prog_set", "enable", "get", "load_btf", "FINDER_NAME")

logger = logging.getLogger("drgn_btfvars")

#: The name of every finder this plugin registers (type, object, symbol, debug info).
FINDER_NAME = "btfvars"

# Each program's KernelBtf lives in its Program.config (drgn's dictionary for
# helpers' data), so that it goes away with the program.
_CONFIG_KEY = "drgn_btfvars"


def enable(
    prog: Program,
    *,
    vmlinux: Union[None, bytes, str, "os.PathLike[str]"] = None,
    vars_btf: Union[None, bytes, str, "os.PathLike[str]"] = None,
    use_fake_module: Optional[bool] = None,
    kallsyms: Union[None, str, "os.PathLike[str]"] = None,
) -> KernelBtf:
    """Enable types from BTF and addresses from kallsyms for a kernel program.

    The finders are enabled after any already there, so DWARF (when found)
    always wins. Nothing is read until the first lookup.

    :param vmlinux: vmlinux BTF (bytes, raw BTF file or ELF file with
        ``.BTF``) to use instead of the kernel's own.
    :param vars_btf: a variable BTF to use instead of the fake module's
        (default: ``$DRGN_BTFVARS_VARS``).
    :param use_fake_module: use the loaded ``btf_global_variables`` module
        (default: unless ``$DRGN_BTFVARS_NO_FAKE_MODULE`` is set).
    :param kallsyms: a System.map or a saved ``/proc/kallsyms`` for the
        vmlinux symbols (needed before Linux 6.0, whose VMCOREINFO does not
        locate kallsyms; default: ``$DRGN_BTFVARS_KALLSYMS``). It is checked
        against VMCOREINFO and refused if it is another build's.
    :returns: the state object, for status and diagnostics.
    :raises ValueError: if ``prog`` is not a Linux kernel program, or if it
        was enabled already.
    """
    if not prog.flags & ProgramFlags.IS_LINUX_KERNEL:
        raise ValueError("drgn-btfvars only applies to Linux kernel programs")
    if get(prog) is not None:
        raise ValueError("drgn-btfvars is already enabled for this program")
    if use_fake_module is None:
        use_fake_module = not os.environ.get("DRGN_BTFVARS_NO_FAKE_MODULE")
    kb = KernelBtf(prog, vmlinux=vmlinux, vars_btf=vars_btf, use_fake_module=use_fake_module,
                   kallsyms=kallsyms)
    prog.register_symbol_finder(FINDER_NAME, kb.symbol_finder, enable_index=-1)
    prog.register_type_finder(FINDER_NAME, kb.type_finder, enable_index=-1)
    prog.register_object_finder(FINDER_NAME, kb.object_finder, enable_index=-1)
    prog.register_debug_info_finder(FINDER_NAME, kb.debug_info_finder, enable_index=-1)
    prog.config[_CONFIG_KEY] = kb
    return kb


def load_btf(
    prog: Program,
    data: Union[bytes, str, "os.PathLike[str]"],
    name: Optional[str] = None,
) -> "Btf":
    """Add BTF to a program's sources (enabling the plugin for it first if
    needed): a variable BTF made by ``drgn-btfvars generate`` (checked
    against this kernel's build), or any BTF split on this kernel's vmlinux,
    such as a module's. See :meth:`KernelBtf.load_btf`."""
    kb = get(prog) or enable(prog)
    return kb.load_btf(data, name)


def get(prog: Program) -> Optional[KernelBtf]:
    """The state :func:`enable` made for ``prog``, or ``None``."""
    kb = prog.config.get(_CONFIG_KEY)
    return kb if isinstance(kb, KernelBtf) and kb.prog is prog else None


def drgn_prog_set(prog: Program) -> None:
    """drgn plugin hook: enable BTF finders for Linux kernel programs."""
    if not prog.flags & ProgramFlags.IS_LINUX_KERNEL:
        return
    if os.environ.get("DRGN_BTFVARS_DISABLE"):
        return
    if get(prog) is None:
        enable(prog)
