"""C definitions (drgn_btfvars.btf.cdump, behind ``drgn-btfvars dump``)
against ``bpftool btf dump file ... format c`` on the committed vmlinux BTF.

bpftool writes every type once, in dependency order; each named struct,
union, enum and typedef we write must be one of its top-level blocks,
character for character. Names that BTF defines more than once are
excluded (bpftool renames all but one with ``___N`` suffixes, a whole-dump
convention that a single-type dump does not follow), as are blocks that
mention such a renamed type.
"""

import re
import subprocess
from collections import Counter

import pytest

from drgn_btfvars.btf import BtfKind, cdump

from .conftest import KERNELS, bpftool, fixture_btf, fixture_path

_KEYWORD = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union", BtfKind.ENUM: "enum",
            BtfKind.ENUM64: "enum"}


def _bpftool_blocks(path) -> "tuple[set, dict]":
    """bpftool's top-level definitions: the set of all blocks, and the block
    of each ``struct/union/enum NAME {`` header."""
    tool = bpftool()
    if tool is None:
        pytest.skip("bpftool not installed (apt package bpftool; bash dev.sh installs it)")
    version = subprocess.run([tool, "version"], capture_output=True, text=True, timeout=60)
    if not re.search(r"\bv7\.1\.", version.stdout):
        pytest.skip(f"cdump follows bpftool 7.1's conventions; this is {version.stdout.split()[:2]}")
    r = subprocess.run([tool, "btf", "dump", "file", str(path), "format", "c"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    blocks, by_header, cur = set(), {}, []
    for line in r.stdout.split("\n"):
        if not cur and re.match(r"(struct|union|enum|typedef) ", line):
            cur = [line]
        elif cur:
            cur.append(line)
        if cur and (line.startswith("}") or (len(cur) == 1 and line.endswith(";"))):
            block = "\n".join(cur)
            blocks.add(block)
            m = re.match(r"(struct|union|enum) (\w+) \{", cur[0])
            if m:
                by_header.setdefault((m.group(1), m.group(2)), block)
            cur = []
    return blocks, by_header


@pytest.mark.parametrize("key", [k for k in KERNELS if k in ("bookworm", "sid")])
def test_definitions_match_bpftool(key, tmp_path, record_property) -> None:
    btf = fixture_btf(key, "vmlinux")
    blocks, by_header = _bpftool_blocks(fixture_path(tmp_path, key, "vmlinux"))
    stats: Counter = Counter()
    bad = []
    for tid in btf.ids():
        t = btf.type(tid)
        if not t.name or t.kind not in (*_KEYWORD, BtfKind.TYPEDEF):
            continue
        if t.name == "__builtin_va_list":
            stats["compiler built-in, left out by bpftool"] += 1
            continue
        if len(btf.find(t.name, t.kind)) > 1:
            stats["name defined more than once"] += 1
            continue
        got = cdump.definition(btf, tid)
        if t.kind != BtfKind.TYPEDEF:
            want = by_header.get((_KEYWORD[t.kind], t.name))
            if want is None:
                stats["not defined by bpftool"] += 1  # e.g. only forward-declared
                continue
            if "___" in want:
                stats["mentions a renamed type"] += 1
                continue
            ok = got == want
        else:
            ok = got in blocks
            if not ok and "___" in " ".join(b for b in blocks if t.name in b.split()):
                stats["mentions a renamed type"] += 1
                continue
        if ok:
            stats["same"] += 1
        else:
            bad.append((t.name, got))
    line = f"{key} cdump vs bpftool: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()))
    print("\n" + line)
    record_property("cdump", line)
    assert not bad, bad[:5]
    assert stats["same"] > 1000


def test_declarations() -> None:
    """A few declarators of the committed 7.2 BTF, written as C writes them."""
    btf = fixture_btf("sid", "vmlinux")

    def member(struct: str, name: str) -> str:
        sid, = btf.find(struct, BtfKind.STRUCT)
        m = next(m for m in btf.type(sid).members if m.name == name)
        return cdump.declaration(btf, m.type, m.name)

    assert member("list_head", "next") == "struct list_head *next"
    assert member("kobj_type", "namespace") == \
        "const struct ns_common * (*namespace)(const struct kobject *)"
    assert member("task_struct", "comm") == "char comm[16]"
    assert cdump.definition(btf, btf.find("list_head", BtfKind.STRUCT)[0]) == (
        "struct list_head {\n\tstruct list_head *next;\n\tstruct list_head *prev;\n};")
