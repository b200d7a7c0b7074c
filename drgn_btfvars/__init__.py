"""drgn-btfvars: kernel debugging with drgn from BTF and kallsyms, without DWARF."""

__version__ = "0.1.0"
