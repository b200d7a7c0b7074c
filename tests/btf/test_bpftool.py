"""External check with Debian's bpftool (libbpf): it reads what we read, and what we write.

Two bpftools: the machine's (bookworm, bpftool 7.1 / libbpf 1.1, installed by dev.sh)
and sid's (bpftool 7.8 / libbpf 1.8) run from a private root by vmcores/toolroot.py.
bpftool 7.1 predates the 2026 layout section and unknown kinds, so those blobs are
checked with sid's only.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind

from .conftest import KERNELS, MODULES, ROOT, bpftool, fixture_btf, fixture_bytes
from .test_basic import build_all

LINE = re.compile(r"^\[(\d+)\] ([A-Z0-9_]+) '([^']*)'", re.M)


def _sid_bpftool():
    """argv of sid's bpftool from its private root (downloaded once into the cache), or a
    reason why not."""
    sys.path.insert(0, str(ROOT / "vmcores"))
    try:
        import toolroot  # vmcores/toolroot.py
        argv = toolroot.tool_argv("sid", "bpftool")
        r = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=60)
        if r.returncode:
            return None, f"sid bpftool does not run: {r.stderr.strip()}"
        return argv, r.stdout.split("\n")[0]
    except Exception as e:  # no network, no apt, no toolroot.py ...
        return None, f"sid bpftool unavailable via vmcores/toolroot.py: {e}"
    finally:
        sys.path.remove(str(ROOT / "vmcores"))


@pytest.fixture(scope="module", params=["bookworm", "sid"])
def tool(request):
    """argv prefix of a bpftool."""
    if request.param == "bookworm":
        p = bpftool()
        if p is None:
            pytest.skip("bpftool not installed (apt package bpftool; bash dev.sh installs it)")
        return [p]
    argv, why = _sid_bpftool()
    if argv is None:
        pytest.skip(why)
    return argv


@pytest.fixture(scope="module")
def sid_tool():
    argv, why = _sid_bpftool()
    if argv is None:
        pytest.skip(why)
    return argv


def run_dump(tool, tmp_path, data: bytes, base: "bytes | None" = None, tag: str = "x") -> str:
    f = tmp_path / f"{tag}.btf"
    f.write_bytes(data)
    cmd = [*tool, "btf", "dump", "file", str(f)]
    if base is not None:
        bf = tmp_path / f"{tag}-base.btf"
        bf.write_bytes(base)
        cmd += ["-B", str(bf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"bpftool rejected {tag}: {r.stderr.strip()}"
    return r.stdout


def rows(text: str):
    return [(int(i), k, n) for i, k, n in LINE.findall(text)]


def ours(btf: Btf):
    return [(i, btf.kind(i).name, btf.name(i) or "(anon)") for i in btf.ids()]


def our_dump(btf: Btf) -> list:
    return "\n".join(btf.dump_raw(i) for i in btf.ids()).splitlines()


def counts(rs):
    c = {}
    for _, k, _ in rs:
        c[k] = c.get(k, 0) + 1
    return c


@pytest.mark.parametrize("key", KERNELS)
def test_real_btf_counts_agree(tool, tmp_path, key):
    """Per-kind counts, ids, kinds and names of vmlinux and module BTF."""
    vdata = fixture_bytes(key, "vmlinux")
    vml = fixture_btf(key, "vmlinux")
    theirs = rows(run_dump(tool, tmp_path, vdata, tag=key))
    assert counts(theirs) == {k.name: v for k, v in vml.kind_counts().items()}
    assert theirs == ours(vml)
    for m in MODULES:
        mdata = fixture_bytes(key, m)
        mod = fixture_btf(key, m)
        theirs = rows(run_dump(tool, tmp_path, mdata, vdata, tag=f"{key}-{m}"))
        assert counts(theirs) == {k.name: v for k, v in mod.kind_counts().items()}
        assert theirs == ours(mod)


def test_running_kernel_btf_counts_agree(tool, tmp_path):
    """This machine's own ``/sys/kernel/btf/vmlinux`` (whatever kernel CI runs on)."""
    path = Path("/sys/kernel/btf/vmlinux")
    try:
        data = path.read_bytes()
    except OSError as e:
        pytest.skip(f"{path} cannot be read on this machine: {e}")
    btf = Btf(data, name="running vmlinux")
    theirs = rows(run_dump(tool, tmp_path, data, tag="running"))
    assert counts(theirs) == {k.name: v for k, v in btf.kind_counts().items()}
    assert theirs == ours(btf)


@pytest.mark.parametrize("key", KERNELS)
def test_full_dump_matches_modules(tool, tmp_path, key):
    """Every decoded field of the module BTFs, line for line with bpftool."""
    vdata = fixture_bytes(key, "vmlinux")
    for m in MODULES:
        mdata = fixture_bytes(key, m)
        theirs = run_dump(tool, tmp_path, mdata, vdata, f"{key}-{m}").splitlines()
        assert our_dump(fixture_btf(key, m)) == theirs


def test_full_dump_matches_sid_vmlinux(tmp_path):
    """Every decoded field of the newest kernel's vmlinux BTF, line for line with bpftool
    (sid's if it can be had, else the machine's: both print the same)."""
    argv, why = _sid_bpftool()
    if argv is None:
        p = bpftool()
        if p is None:
            pytest.skip(f"no bpftool: not installed, and {why}")
        argv = [p]
    data = fixture_bytes("sid", "vmlinux")
    assert our_dump(fixture_btf("sid", "vmlinux")) == run_dump(argv, tmp_path, data, tag="sid").splitlines()


def extended(byteorder="little", layout=False):
    b, _ = build_all(byteorder, layout)
    b.add_enum64("u64", 8, [("MAXU", (1 << 64) - 1)])
    b.add_func_proto(0, [], variadic=True)
    b.add_func("ext", 15, 2)
    b.add_var("g", 1, 1)
    b.add_var("e", 1, 2)
    return b


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_bpftool_accepts_builder_output(tool, tmp_path, byteorder):
    """Base and split blobs we write, in both byte orders, read back identically by bpftool."""
    base_blob = extended(byteorder).to_bytes()
    base = Btf(base_blob)
    assert run_dump(tool, tmp_path, base_blob, tag="base").splitlines() == our_dump(base)
    s = BtfBuilder(base, byteorder=byteorder)
    st = s.add_struct("split_s", 8, [("a", 1, 0, 0), ("b", 2, 32, 0), ("c", 1, 40, 3)])
    s.add_ptr(st)
    s.add_var("split_v", st)
    split_blob = s.to_bytes()
    split = Btf(split_blob, base)
    assert run_dump(tool, tmp_path, split_blob, base_blob, tag="split").splitlines() == our_dump(split)


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_sid_bpftool_reads_layout_section(sid_tool, tmp_path, byteorder):
    """hdr_len 32 with a layout section, both byte orders."""
    b = extended(byteorder, layout=True)
    blob = b.to_bytes()
    btf = Btf(blob)
    assert btf.header.hdr_len == 32 and btf.header.layout_len == 4 * 20
    assert run_dump(sid_tool, tmp_path, blob, tag="lay").splitlines() == our_dump(btf)


def test_sid_bpftool_unknown_kind_from_layout(sid_tool, tmp_path):
    """An unknown kind sized by the layout section, in base and in split BTF (which uses
    its base's layout). Little-endian only: libbpf 1.8 cannot byte-swap a kind it does
    not know ("Unsupported BTF_KIND"), although we read such big-endian blobs."""
    b = extended("little", layout=True)
    b.extra_layout[42] = (4, 8)
    unk = b.add_raw(42, "new_kind", 2, False, 1, b"\0" * 20)
    b.add_ptr(unk)
    blob = b.to_bytes()
    btf = Btf(blob)
    assert btf.kind(unk) == BtfKind.UNKNOWN and btf.raw_kind(unk) == 42
    assert run_dump(sid_tool, tmp_path, blob, tag="lay").splitlines() == our_dump(btf)
    s = BtfBuilder(btf)
    s.add_raw(42, "split_new", 1, False, 0, b"\0" * 12)
    s.add_var("sv", unk)
    sblob = s.to_bytes()
    split = Btf(sblob, btf)
    assert split.header.hdr_len == 24 and split.raw_kind(split.first_id) == 42
    assert run_dump(sid_tool, tmp_path, sblob, blob, tag="slay").splitlines() == our_dump(split)
    # The same blobs big-endian: we read them (bpftool cannot, see above).
    bb = extended("big", layout=True)
    bb.extra_layout[42] = (4, 8)
    bb.add_raw(42, "new_kind", 2, False, 1, b"\0" * 20)
    bb.add_ptr(unk)
    assert our_dump(Btf(bb.to_bytes())) == our_dump(btf)
