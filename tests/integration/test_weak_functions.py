"""Weak functions (kallsyms ``W``, no kind in drgn) are typed like any
function, and agree with drgn + DWARF (``vmcores/weak.py``'s record)."""

import pytest

from vmcores import weak

from .conftest import BtfSession


def test_weak_functions(vars_session: BtfSession, vmcore_key, record_property) -> None:
    truth = weak.load(vmcore_key)
    if truth is None:
        pytest.skip(f"{vmcore_key}: no weak-function record (python3 vmcores/weak.py record "
                    f"{vmcore_key}, needs the -dbg vmlinux)")
    kb = vars_session.kb
    matched = not_found = 0
    mismatched = []
    for name, want in truth["verified"].items():
        obj = kb._find_function(name)
        if obj is None:
            not_found += 1
            continue
        got = (obj.address_, obj.type_.type_name())
        if got != (want["address"], want["type"]):
            mismatched.append((name, got, want))
        else:
            matched += 1
    # Placed by the ELF symbol table only: the address must be that one; the
    # prototype is compared with DWARF's other entry of the name, reported.
    placed = same_proto = 0
    for name, want in truth["address_from_symtab"].items():
        obj = kb._find_function(name)
        if obj is None:
            continue
        if obj.address_ != want["address"]:
            mismatched.append((name, obj.address_, want))
            continue
        placed += 1
        same_proto += obj.type_.type_name() == want["type"]
    typed_unverified = sum(kb._find_function(n) is not None for n in truth["unverifiable"])
    summary = (f"{vmcore_key} weak functions: matched {matched}, mismatched {len(mismatched)}, "
               f"not found {not_found} of {len(truth['verified'])}; placed by the symbol table "
               f"{placed} of {len(truth['address_from_symtab'])} (prototype as DWARF's other "
               f"entry: {same_proto}); typed, not verifiable {typed_unverified} of "
               f"{len(truth['unverifiable'])}")
    print("\n" + summary)
    record_property("weak functions", summary)
    assert not mismatched, mismatched[:5]
    assert same_proto == placed, summary
    assert matched >= 0.9 * len(truth["verified"]), summary
