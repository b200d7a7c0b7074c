"""The committed variable BTFs (vmcores/<key>/vars/) against the committed bases
(vmcores/<key>/btf/vmlinux.btf.zst), as a user-supplied variable BTF would be checked."""

import hashlib

import pytest

from drgn_btfvars.btf import Btf, BtfKind
from drgn_btfvars.gen.generate import check_variable_btf
from drgn_btfvars.gen.meta import META_ENUM_NAME, decode_meta

from .conftest import KERNELS, committed_base, committed_vars, vmcores_module


@pytest.fixture(scope="module", params=KERNELS)
def pair(request):
    key = request.param
    v, b = committed_vars(key), committed_base(key)
    if v is None or b is None:
        pytest.skip(f"vmcores/{key}: variable BTF or base BTF not committed")
    base = Btf(b, name=f"{key} vmlinux")
    return key, Btf(v, base, name=f"{key} vars"), base


def test_parses_as_split_and_passes_checks(pair):
    key, v, base = pair
    assert v.first_id == base.end_id
    assert check_variable_btf(v.data, base) == []


def test_datasecs_sorted_disjoint(pair):
    key, v, base = pair
    nds = 0
    for ds in v.datasecs():
        if ds < v.first_id:
            continue
        nds += 1
        ents = v.type(ds).secinfos
        offs = [(s.offset, s.size) for s in ents]
        assert offs == sorted(offs)
        assert all(a[0] + a[1] <= b[0] for a, b in zip(offs, offs[1:]))
    assert nds >= 10


def test_meta_identifies_base_and_build(pair):
    key, v, base = pair
    (mid,) = v.find(META_ENUM_NAME)
    t = v.type(mid)
    assert t.kind == BtfKind.ENUM64 and mid == v.end_id - 1
    m = decode_meta((e.name, e.value) for e in t.enumerators)
    assert m["base_sha256"] == int.from_bytes(hashlib.sha256(base.data).digest()[:8], "big")
    assert m["base_len"] == len(base.data)
    assert m["release"] == vmcores_module("kernels").KERNELS[key].release
    assert len(m["build_id"]) == 40 and m["build_id"] != "0" * 40
    for s in ("_stext", "_end", "__start_BTF", "__stop_BTF", "btf_modules", "modules",
              "__per_cpu_offset", "jiffies"):
        assert s in m["sym"], s


def test_counts_and_aliases(pair):
    key, v, base = pair
    counts = v.kind_counts()
    assert counts[BtfKind.VAR] > 20_000
    assert set(counts) <= {BtfKind.VAR, BtfKind.DATASEC, BtfKind.ENUM64, BtfKind.VOLATILE,
                           BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF,
                           BtfKind.CONST, BtfKind.PTR, BtfKind.ARRAY, BtfKind.FUNC_PROTO,
                           BtfKind.ENUM, BtfKind.FWD}
    in_sec = {s.type for d in v.datasecs() if d >= v.first_id for s in v.type(d).secinfos}
    jiffies = [i for i in v.find("jiffies") if v.kind(i) == BtfKind.VAR]
    assert len(jiffies) == 1 and jiffies[0] not in in_sec
    t = v.type(v.type(jiffies[0]).type)
    assert t.kind == BtfKind.VOLATILE and v.type(t.type).name == "long unsigned int"
    # jiffies_64 is a real VAR inside a DATASEC.
    assert any(i in in_sec for i in v.find("jiffies_64"))
