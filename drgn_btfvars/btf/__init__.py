"""BTF engine: a strict reader and a writer for BTF (base and split), no drgn here."""

from .format import (
    BTF_FUNC_EXTERN, BTF_FUNC_GLOBAL, BTF_FUNC_STATIC, BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED,
    BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_GLOBAL_EXTERN, BTF_VAR_STATIC, BtfError, BtfHeader, BtfKind,
)
from .reader import Btf, accelerated
from .types import BtfEnumerator, BtfMember, BtfParam, BtfType, BtfVarSecinfo

__all__ = [
    "Btf", "BtfError", "BtfBuilder", "BtfKind", "BtfType", "BtfMember", "BtfParam",
    "BtfEnumerator", "BtfVarSecinfo", "BtfHeader", "accelerated",
    "BTF_INT_SIGNED", "BTF_INT_CHAR", "BTF_INT_BOOL",
    "BTF_VAR_STATIC", "BTF_VAR_GLOBAL_ALLOCATED", "BTF_VAR_GLOBAL_EXTERN",
    "BTF_FUNC_STATIC", "BTF_FUNC_GLOBAL", "BTF_FUNC_EXTERN",
]


def __getattr__(name: str):  # PEP 562: the writer is imported only when used
    if name == "BtfBuilder":
        from .writer import BtfBuilder

        return BtfBuilder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
