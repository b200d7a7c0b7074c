"""drgn-btfvars: kernel debugging with drgn from BTF and kallsyms, without DWARF.

Importing this package is cheap; :func:`enable` wires a program up::

    import drgn, drgn_btfvars
    prog = drgn.program_from_core_dump("vmcore")   # the plugin hook runs here
    prog["jiffies"]

For a program made by hand (``drgn.Program()`` + ``set_core_dump()``, with
plugins disabled), call ``drgn_btfvars.enable(prog)`` first.
"""

__version__ = "0.1.0"

__all__ = ("enable", "get", "load_btf", "__version__")


def enable(prog, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`drgn_btfvars.plugin.enable`."""
    from drgn_btfvars.plugin import enable as _enable

    return _enable(prog, **kwargs)


def get(prog):  # type: ignore[no-untyped-def]
    """See :func:`drgn_btfvars.plugin.get`."""
    from drgn_btfvars.plugin import get as _get

    return _get(prog)


def load_btf(prog, data, name=None):  # type: ignore[no-untyped-def]
    """See :func:`drgn_btfvars.plugin.load_btf`."""
    from drgn_btfvars.plugin import load_btf as _load_btf

    return _load_btf(prog, data, name)
