"""Checks against the real -dbg vmlinux (skipped when the cache lacks it).

* every VAR inside a DATASEC of the committed variable BTF sits, at
  ``BTFVARS_SECADDR_<n>`` + offset, on a vmlinux symbol of its name (this is
  what the plugin computes without kallsyms, before adding the KASLR offset);
* a real generation on trixie with pahole from the private tool root gives
  the committed figures (skipped without that pahole).
"""

import shlex
from collections import defaultdict
from pathlib import Path

import pytest

from drgn_btfvars.btf import Btf, BtfKind
from drgn_btfvars.gen.meta import META_ENUM_NAME, decode_meta

from .conftest import KERNELS, cache_dir, committed_base, committed_vars, vmcores_module


def _vmlinux(key: str) -> Path:
    kernels = vmcores_module("kernels")
    k = kernels.KERNELS[key]
    if not (cache_dir() / "kernels" / key / "dbg" / ".done").exists():
        pytest.skip(f"no unpacked -dbg package for {key} (python3 vmcores/kernels.py {key} dbg)")
    return k.debug_vmlinux()


def _symbols(vmlinux: Path):
    from elftools.elf.elffile import ELFFile

    out = defaultdict(set)
    with open(vmlinux, "rb") as f:
        for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if s["st_shndx"] != "SHN_UNDEF" and s.name:
                out[s.name].add(s["st_value"])
    return out


@pytest.mark.parametrize("key", KERNELS)
def test_datasec_addresses_match_symbols(key):
    vml = _vmlinux(key)
    vb, bb = committed_vars(key), committed_base(key)
    if vb is None or bb is None:
        pytest.skip(f"vmcores/{key}: variable or base BTF not committed")
    v = Btf(vb, Btf(bb))
    m = decode_meta((e.name, e.value) for e in v.type(v.find(META_ENUM_NAME)[0]).enumerators)
    syms = _symbols(vml)
    total = hit = 0
    missing = []
    for n, ds in enumerate(d for d in v.datasecs() if d >= v.first_id):
        sec = m["secaddr"][n]
        for s in v.type(ds).secinfos:
            name = v.type(s.type).name
            total += 1
            if sec + s.offset in syms.get(name, ()):
                hit += 1
            else:
                missing.append((v.type(ds).name, name, hex(sec + s.offset)))
    # Every variable with a symbol of its name must be at the computed address.
    assert total > 20_000
    assert hit / total > 0.999, missing[:20]
    for alias, addr in m["sym"].items():
        assert addr in syms[alias], alias


def test_generate_trixie(tmp_path):
    vml = _vmlinux("trixie")
    root = cache_dir() / "toolroots" / "trixie-pahole"
    if not (root / ".done").exists():
        pytest.skip("no private trixie pahole (python3 vmcores/toolroot.py trixie pahole --path)")
    toolroot = vmcores_module("toolroot")
    from drgn_btfvars.gen.generate import generate

    r = generate(vml, tmp_path / "vars.btf", pahole=shlex.join(toolroot.tool_argv("trixie", "pahole")),
                 kernel_pahole=130, bpftool="")
    assert r.report.dropped_duplicate_entries >= 40
    assert r.counts["VAR"] == r.report.kept_vars + len(r.alias_vars) > 30_000
    assert r.alias_vars == ["jiffies"]
    committed, base = committed_vars("trixie"), committed_base("trixie")
    if committed is not None and base is not None:
        c = Btf(committed, Btf(base))
        assert c.kind_counts()[BtfKind.VAR] == r.counts["VAR"]
