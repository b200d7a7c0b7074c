"""The generator: a variable BTF from a DWARF vmlinux, packaged as a kernel module.

* :mod:`.pahole` runs pahole (≥ 1.28, ``global_var``) against the final base BTF;
* :mod:`.supplement` adds the variables pahole leaves out, typed from DWARF via drgn;
* :mod:`.repair` makes its output acceptable to the kernel and small;
* :mod:`.meta` writes the ``btf_global_variables_meta`` identity/address record;
* :mod:`.generate` ties them together (``drgn-btfvars generate``);
* :mod:`.module` builds ``btf_global_variables.ko`` (``drgn-btfvars build-module``).
"""

__all__ = ["generate", "meta", "module", "pahole", "repair", "supplement"]
