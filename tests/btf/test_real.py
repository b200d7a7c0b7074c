"""The committed real BTF of the three pinned Debian kernels (vmlinux + modules)."""

import pytest

from drgn_btfvars.btf import Btf, BtfBuilder, BtfError, BtfKind

from .conftest import KERNELS, MODULES, ROOT, fixture_btf, fixture_bytes


@pytest.fixture(scope="module", params=KERNELS)
def chain(request):
    key = request.param
    vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux")
    mods = {m: Btf(fixture_bytes(key, m), vml, name=m) for m in MODULES}
    return key, vml, mods


def test_vmlinux_facts(chain):
    key, vml, mods = chain
    assert vml.first_id == 1 and vml.end_id == len(vml) + 1 > 90_000
    assert vml.byteorder == "little" and vml.header.hdr_len == 24
    (ts,) = vml.find("task_struct", BtfKind.STRUCT)
    t = vml.type(ts)
    assert t.name == "task_struct" and vml.size_of(ts) == t.size > 4000
    assert "pid" in {m.name for m in t.members}
    pid_t = vml.find("pid_t", BtfKind.TYPEDEF)
    assert len(pid_t) == 1 and vml.size_of(pid_t[0]) == 4
    assert vml.type(vml.resolve(pid_t[0])).kind == BtfKind.INT
    assert vml.ptr_size == 8
    # vmlinux .BTF has one DATASEC (.data..percpu) holding the per-CPU VARs.
    (ds,) = list(vml.datasecs())
    assert vml.name(ds) == ".data..percpu"
    vars_ = list(vml.vars())
    assert len(vars_) > 300 and {s.type for s in vml.type(ds).secinfos} == set(vars_)
    assert vml.find("runqueues", BtfKind.VAR) and vml.type(vml.find("runqueues", BtfKind.VAR)[0]).kind == BtfKind.VAR
    counts = vml.kind_counts()
    assert sum(counts.values()) == len(vml) and counts[BtfKind.FUNC] > 40_000


def test_modules_split(chain):
    key, vml, mods = chain
    for m, b in mods.items():
        assert b.first_id == vml.end_id and b.str_start == vml.str_end
        b.validate()
        # Names resolve across the chain; ids of the base are reachable from the split object.
        assert b.type(1) == vml.type(1)
        assert b.find_all("task_struct", BtfKind.STRUCT) == vml.find("task_struct", BtfKind.STRUCT)
    ext4 = mods["ext4"]
    assert ext4.find("ext4_sb_info", BtfKind.STRUCT)
    (sbi,) = ext4.find("ext4_sb_info", BtfKind.STRUCT)
    assert ext4.size_of(sbi) > 500


@pytest.mark.parametrize("key", KERNELS)
def test_vmlinux_validates(key):
    fixture_btf(key, "vmlinux").validate()


@pytest.mark.parametrize("key", KERNELS)
@pytest.mark.parametrize("mod", MODULES)
def test_module_rewrite(key, mod):
    """Copying every record of a real split BTF through BtfBuilder reproduces it."""
    vml = fixture_btf(key, "vmlinux")
    b = fixture_btf(key, mod)
    for order in ("little", "big"):
        w = BtfBuilder(vml, byteorder=order)
        for i in b.ids():
            assert w.add_type(b.type(i)) == i
        c = Btf(w.to_bytes(), vml)
        assert [c.type(i) for i in c.ids()] == [b.type(i) for i in b.ids()]
        if order == "little":
            assert len(w.to_bytes()) <= len(fixture_bytes(key, mod))


def test_vmlinux_rewrite_trixie():
    """The whole trixie vmlinux BTF through BtfBuilder (big-endian) decodes identically."""
    a = fixture_btf("trixie", "vmlinux")
    w = BtfBuilder(byteorder="big")
    for i in a.ids():
        w.add_type(a.type(i))
    b = Btf(w.to_bytes())
    assert b.byteorder == "big" and len(b) == len(a)
    for i in a.ids():
        assert a.type(i) == b.type(i)


def test_format_c_real():
    vml = fixture_btf("sid", "vmlinux")
    (f,) = vml.find("kthread_create_on_node", BtfKind.FUNC)
    assert vml.format_c(f) == ("struct task_struct *kthread_create_on_node(int (*threadfn)(void *), "
                               "void *data, int node, const char *namefmt, ...)")
    (ts,) = vml.find("task_struct", BtfKind.STRUCT)
    decls = [vml.format_c(m.type, m.name) for m in vml.type(ts).members]
    assert "struct task_struct *last_wakee" in decls and "const cpumask_t *cpus_ptr" in decls


def test_var_raw_accessors_agree_with_decoding(chain):
    """var_type()/var_records() read VARs from raw words; they must give what
    decoding the record gives (the variable BTF of the same kernel is the
    big case: ~24-35k VARs)."""
    key, vml, _ = chain
    btfs = [vml]
    if (ROOT / "vmcores" / key / "vars" / "btf_global_variables.btf.zst").exists():
        btfs.append(Btf(fixture_bytes(key, "../vars/btf_global_variables"), vml,
                        name="btf_global_variables"))
    for btf in btfs:
        records = btf.var_records()
        assert [r[0] for r in records] == list(btf.vars())
        for vid, name, tid, linkage in records:
            t = btf.type(vid)
            assert (name, tid, linkage) == (t.name, t.type, t.linkage)
            assert btf.var_type(vid) == (tid, linkage)
    (ts,) = vml.find("task_struct", BtfKind.STRUCT)
    with pytest.raises(BtfError, match="not a VAR"):
        vml.var_type(ts)


@pytest.mark.parametrize("accel", [False, True], ids=["pure", "accel"])
def test_raw_scans_agree_with_indexes(chain, accel):
    """The first variable lookups scan raw words (var_location); they must
    give what the full map gives, in C and in pure Python."""
    key, _, _ = chain
    vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux", accel=accel)
    if accel and vml._accel is None:
        pytest.skip("the C accelerator is not built")
    btfs = [vml]
    if (ROOT / "vmcores" / key / "vars" / "btf_global_variables.btf.zst").exists():
        btfs.append(Btf(fixture_bytes(key, "../vars/btf_global_variables"), vml,
                        name="btf_global_variables", accel=accel))
    for btf in btfs:
        locs = btf.var_locations()
        ids = list(btf.vars())
        for vid in ids[:: max(1, len(ids) // 400)]:
            assert btf.var_location(vid) == locs.get(vid), vid


def test_check_base_catches_a_wrong_base():
    """Split BTF made on one kernel's vmlinux and opened on another's either
    fails to parse or has names inside base strings: check_base() says so."""
    for key in KERNELS:
        if not (ROOT / "vmcores" / key / "btf" / "vmlinux.btf.zst").exists():
            continue
        vml = Btf(fixture_bytes(key, "vmlinux"))
        for other in KERNELS:
            if not (ROOT / "vmcores" / other / "btf" / "ext4.btf.zst").exists():
                continue
            for mod in MODULES:
                if other == key:
                    Btf(fixture_bytes(other, mod), vml).check_base()
                    continue
                with pytest.raises(BtfError):
                    Btf(fixture_bytes(other, mod), vml).check_base()
