"""The bulk variable table (Btf.var_table: a C table at the first lookup
with the accelerator, a dict after many lookups without) gives exactly what
the per-name path gives, for every name of the variable BTF."""

from pathlib import Path

from drgn import Type, TypeKind, sizeof

from drgn_btfvars import finders
from drgn_btfvars.btf import BtfKind

from .conftest import BtfSession, fake_module_loaded, open_btf, vars_btf_bytes


def _identity(t: Type) -> tuple:
    return (t.kind, t.type_name(), sizeof(t) if t.is_complete() and t.kind != TypeKind.FUNCTION
            else None)


def _reopen(key: str, path: Path) -> BtfSession:
    """Another session with the same variable BTF as ``vars_session``."""
    if fake_module_loaded(key):
        return open_btf(path)
    return open_btf(path, vars_btf=vars_btf_bytes(key))


def test_table_equals_per_name_path(vars_session: BtfSession, vmcore_key: str,
                                    vmcore_path: Path) -> None:
    kb = vars_session.kb
    vars_btf = kb.vars()
    assert vars_btf is not None
    table = kb._build_var_table(vars_btf)
    names = {vars_btf.name(v) for v in vars_btf.vars()}
    hits = {name: table.get(name) for name in names}
    hits = {name: hit for name, hit in hits.items() if hit is not None}
    # Nearly every name has a section link address in the identity record.
    assert len(hits) >= 0.99 * len(names), (len(hits), len(names))

    # A fresh session that never builds the table (countdown out of reach).
    slow = _reopen(vmcore_key, vmcore_path)
    slow.kb._var_table_countdown = 10 ** 9
    same = 0
    for name, (address, type_id) in hits.items():
        obj = slow.kb._find_variable(name)
        assert obj is not None, name
        assert obj.address_ == address, name
        # Same BTF bytes, so the same type id must give the same type (drgn
        # Types have no ==: compare what identifies them).
        assert _identity(obj.type_) == _identity(slow.kb.converter.type(slow.kb.vars(), type_id)), name
        same += 1
    assert same == len(hits)
    assert slow.kb._var_table is None


def test_table_is_built_after_many_lookups(vmcore_key: str, vmcore_path: Path,
                                           vars_session: BtfSession) -> None:
    s = _reopen(vmcore_key, vmcore_path)
    vars_btf = s.kb.vars()
    names = [vars_btf.name(v) for v in vars_btf.ids_of_kind(BtfKind.VAR)]
    for name in names[: finders._VAR_TABLE_AFTER + 1]:
        s.prog.variable(name)
    assert s.kb._var_table is not None
    # Names outside the table still resolve the ordinary way (per-CPU
    # variables of vmlinux's own DATASEC, functions).
    assert s.prog["runqueues"].type_.type_name() == "struct rq"


def test_integer_spellings(vars_session: BtfSession) -> None:
    """Every C spelling of an integer type finds vmlinux's INT, the same
    type as BTF's own spelling, and different types stay different."""
    from drgn_btfvars.finders import _int_words

    assert _int_words("unsigned long") == _int_words("long unsigned int")
    assert _int_words("short") == _int_words("short int")
    assert _int_words("signed char") != _int_words("char")
    assert _int_words("long long unsigned int") != _int_words("long unsigned int")
    prog = vars_session.prog
    for a, b in [("unsigned long", "long unsigned int"), ("unsigned long long", "long long unsigned int"),
                 ("unsigned short", "short unsigned int"), ("short", "short int"),
                 ("unsigned char", "unsigned char"), ("long long", "long long int")]:
        ta, tb = prog.type(a), prog.type(b)
        assert (ta.name, ta.size, ta.is_signed) == (tb.name, tb.size, tb.is_signed), (a, b)
    assert prog.type("signed char").is_signed and prog.type("unsigned char").is_signed is False
