"""External check with Debian's bpftool (libbpf): it reads what we read, and what we write.

bpftool 7.1 (bookworm) reads the BTF of all three pinned kernels. It predates the
2026 layout section, so blobs with hdr_len 32 are not shown to it.
"""

import re
import subprocess

import pytest

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind

from .conftest import KERNELS, MODULES, bpftool, fixture_bytes
from .test_basic import build_all

BPFTOOL = bpftool()
pytestmark = pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed (apt package "
                                "bpftool; bash dev.sh installs it)")
LINE = re.compile(r"^\[(\d+)\] ([A-Z0-9_]+) '([^']*)'", re.M)


def dump(tmp_path, data: bytes, base: "bytes | None" = None, tag: str = "x"):
    f = tmp_path / f"{tag}.btf"
    f.write_bytes(data)
    cmd = [BPFTOOL, "btf", "dump", "file", str(f)]
    if base is not None:
        bf = tmp_path / f"{tag}-base.btf"
        bf.write_bytes(base)
        cmd += ["-B", str(bf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"bpftool rejected {tag}: {r.stderr.strip()}"
    return [(int(i), k, n) for i, k, n in LINE.findall(r.stdout)]


def ours(btf: Btf):
    return [(i, btf.kind(i).name, btf.name(i) or "(anon)") for i in btf.ids()]


def counts(rows):
    c = {}
    for _, k, _ in rows:
        c[k] = c.get(k, 0) + 1
    return c


@pytest.mark.parametrize("key", KERNELS)
def test_real_btf_agrees(tmp_path, key):
    vdata = fixture_bytes(key, "vmlinux")
    vml = Btf(vdata)
    theirs = dump(tmp_path, vdata, tag=key)
    assert counts(theirs) == {k.name: v for k, v in vml.kind_counts().items()}
    assert theirs == ours(vml)
    for m in MODULES:
        mdata = fixture_bytes(key, m)
        mod = Btf(mdata, vml)
        theirs = dump(tmp_path, mdata, vdata, tag=f"{key}-{m}")
        assert counts(theirs) == {k.name: v for k, v in mod.kind_counts().items()}
        assert theirs == ours(mod)


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_bpftool_accepts_builder_output(tmp_path, byteorder):
    b, _ = build_all(byteorder)
    base_blob = b.to_bytes()
    base = Btf(base_blob)
    assert dump(tmp_path, base_blob, tag="base") == ours(base)
    s = BtfBuilder(base, byteorder=byteorder)
    st = s.add_struct("split_s", 8, [("a", 1, 0, 0), ("b", 2, 32, 0)])
    s.add_ptr(st)
    s.add_var("split_v", st)
    split_blob = s.to_bytes()
    split = Btf(split_blob, base)
    assert dump(tmp_path, split_blob, base_blob, tag="split") == ours(split)


def raw_dump(tmp_path, data: bytes, base: "bytes | None" = None, tag: str = "x") -> list:
    f = tmp_path / f"{tag}.btf"
    f.write_bytes(data)
    cmd = [BPFTOOL, "btf", "dump", "file", str(f)]
    if base is not None:
        bf = tmp_path / f"{tag}-base.btf"
        bf.write_bytes(base)
        cmd += ["-B", str(bf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def our_dump(btf: Btf) -> list:
    return "\n".join(btf.dump_raw(i) for i in btf.ids()).splitlines()


@pytest.mark.parametrize("key", KERNELS)
def test_full_dump_matches_modules(tmp_path, key):
    """Every decoded field of the module BTFs, line for line with bpftool."""
    vdata = fixture_bytes(key, "vmlinux")
    vml = Btf(vdata)
    for m in MODULES:
        mdata = fixture_bytes(key, m)
        assert our_dump(Btf(mdata, vml)) == raw_dump(tmp_path, mdata, vdata, f"{key}-{m}")


def test_full_dump_matches_sid_vmlinux(tmp_path):
    """Every decoded field of the newest kernel's vmlinux BTF, line for line with bpftool."""
    data = fixture_bytes("sid", "vmlinux")
    assert our_dump(Btf(data)) == raw_dump(tmp_path, data, tag="sid")


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_full_dump_matches_builder_output(tmp_path, byteorder):
    b, _ = build_all(byteorder)
    b.add_enum64("u64", 8, [("MAXU", (1 << 64) - 1)])
    b.add_func_proto(0, [], variadic=True)
    b.add_func("ext", 15, 2)
    b.add_var("g", 1, 1)
    b.add_var("e", 1, 2)
    data = b.to_bytes()
    assert our_dump(Btf(data)) == raw_dump(tmp_path, data)
