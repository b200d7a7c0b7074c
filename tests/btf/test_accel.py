"""The C accelerator and the pure-Python reader give identical results."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from drgn_btfvars.btf import Btf, BtfError, BtfKind
from drgn_btfvars.btf.reader import _ACCEL, accelerated

from .conftest import KERNELS, MODULES, fixture_bytes
from .test_basic import build_all
from .test_malformed import SMALL, SMALL_BE

needs_accel = pytest.mark.skipif(_ACCEL is None, reason="the cffi accelerator is not built here "
                                 "(no C compiler, or DRGN_BTFVARS_PURE_PYTHON=1)")


def test_accel_built_when_compiler_present():
    """With a compiler and Python headers, `pip install -e .` must have built the accelerator."""
    if os.environ.get("DRGN_BTFVARS_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("DRGN_BTFVARS_PURE_PYTHON is set")
    inc = sysconfig.get_paths()["include"]
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    works = False
    if shutil.which(cc) and os.path.exists(os.path.join(inc, "Python.h")):
        r = subprocess.run([cc, "-x", "c", "-c", "-o", os.devnull, "-"], input=b"int x;\n",
                           capture_output=True)
        works = r.returncode == 0
    if not works:
        pytest.skip(f"no working C compiler ({cc}) or no Python headers: pure Python is expected")
    assert accelerated(), "a compiler is present but drgn_btfvars.btf._accel is not importable"


def test_env_forces_pure_python():
    code = "from drgn_btfvars.btf.reader import accelerated; print(accelerated())"
    env = dict(os.environ, DRGN_BTFVARS_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def outcome(data, base=None, accel=True):
    """Everything observable about opening ``data``: the error, or the per-record facts."""
    try:
        b = Btf(data, base, accel=accel)
    except BtfError as e:
        return ("error", str(e))
    facts = [list(b._offs), b.kind_counts(), list(b.vars()), list(b.datasecs())]
    for i in b.ids():
        try:
            nm = b.name(i)
        except BtfError as e:
            facts.append(str(e))
            continue
        facts.append((i, b.raw_kind(i), nm, b.find(nm), b.find(nm, b.kind(i))))
        for by_value in (True, False):
            try:
                facts.append(b._reaches_itself(i, by_value))
            except BtfError as e:
                facts.append(str(e))
    facts.append(b.find("\0x"))
    facts.append(b.find("\ud800"))
    facts.append(b.find("\udcff"))
    facts.append(b.find(""))
    return facts


@needs_accel
@pytest.mark.parametrize("key", KERNELS)
def test_identical_on_real_btf(key):
    vdata = fixture_bytes(key, "vmlinux")
    pv, cv = Btf(vdata, accel=False), Btf(vdata, accel=True)
    assert pv._accel is None and cv._accel is not None
    assert list(pv._offs) == list(cv._offs)
    assert pv.kind_counts() == cv.kind_counts()
    assert list(pv.vars()) == list(cv.vars()) and list(pv.datasecs()) == list(cv.datasecs())
    index = pv.names()
    assert len(index) > 50_000
    for name, ids in index.items():
        assert cv.find(name) == ids
    for name in ("task_struct", "nonexistent_name_xyz", "int"):
        for k in (None, BtfKind.STRUCT, BtfKind.INT):
            assert pv.find(name, k) == cv.find(name, k)
    for m in MODULES:
        mdata = fixture_bytes(key, m)
        assert outcome(mdata, pv, accel=False) == outcome(mdata, cv, accel=True)


@needs_accel
@pytest.mark.parametrize("blob", [SMALL, SMALL_BE], ids=["le", "be-layout"])
def test_identical_on_malformed(blob):
    assert outcome(blob, accel=False) == outcome(blob, accel=True)
    for i in range(len(blob)):
        assert outcome(blob[:i], accel=False) == outcome(blob[:i], accel=True)
    for pos in range(len(blob)):
        for bit in (0, 5, 7):
            bad = bytearray(blob)
            bad[pos] ^= 1 << bit
            bad = bytes(bad)
            assert outcome(bad, accel=False) == outcome(bad, accel=True), (pos, bit)


@needs_accel
def test_identical_split_duplicate_strings():
    """Names equal as strings but stored at two offsets (base and split) are found alike."""
    from drgn_btfvars.btf import BtfBuilder
    base = Btf(build_all()[0].to_bytes())
    s = BtfBuilder(base)
    s.add_int("int", 4)  # reuses the base's "int"
    # A second copy of "int" at a new offset, via a raw string trick: a name with a new offset.
    s._strs += b"int\0"
    off = s._str_start + len(s._strs) - 4
    s.add_raw(BtfKind.TYPEDEF, "", 0, False, 1)
    blob = bytearray(s.to_bytes())
    import struct
    struct.pack_into("<I", blob, 24 + 16, off)  # name_off of the TYPEDEF (after the 16-byte INT)
    for acc in (False, True):
        b = Btf(bytes(blob), base, accel=acc)
        assert b.find("int") == [b.first_id, b.first_id + 1]
        assert b.find_all("int") == [1, b.first_id, b.first_id + 1]


from hypothesis import HealthCheck, given, settings  # noqa: E402

from .test_malformed import random_records  # noqa: E402


@needs_accel
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_records())
def test_identical_on_random_records(data):
    assert outcome(data, accel=False) == outcome(data, accel=True)


def _enum_btfs(key, accel):
    vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux", accel=accel)
    return [vml] + [Btf(fixture_bytes(key, m), vml, name=m, accel=accel) for m in MODULES]


@needs_accel
@pytest.mark.parametrize("key", KERNELS)
def test_enum_index_identical(key):
    """The C enumerator index finds what the pure-Python index finds, for
    every enumerator name of vmlinux and the fixture modules."""
    for pure, fast in zip(_enum_btfs(key, False), _enum_btfs(key, True)):
        index = pure._build_enum_index()
        assert len(index) > (10_000 if pure.base is None else 0)
        for name, ents in index.items():
            assert fast.find_enumerator(name) == (ents if name else []), (pure.name, name)
        assert isinstance(fast._enum_index, _ACCEL.EnumIndex)
        for name in ("no_such_enumerator_x", "", "\0", "\ud800", "TASK_RUNNING\0"):
            assert fast.find_enumerator(name) == pure.find_enumerator(name) == []


def test_enum_index_corrupt_name_offset():
    """An enumerator whose name offset lies past the strings gives the same
    BtfError with or without the accelerator (which falls back to the
    Python index to name the record)."""
    import struct

    from drgn_btfvars.btf import BtfBuilder
    b = BtfBuilder()
    b.add_int("int", 4)
    b.add_enum("e", 4, [("A", 1), ("B", 2)])
    blob = bytearray(b.to_bytes())
    # The second enumerator's name word: header (24), INT (16), ENUM head (12), A (8).
    struct.pack_into("<I", blob, 24 + 16 + 12 + 8, 0xFFFFFF)
    errors = []
    for acc in (False, True):
        btf = Btf(bytes(blob), accel=acc)
        for _ in range(5):  # past the pure path's few raw scans
            try:
                btf.find_enumerator("A")
                btf.find_enumerator("C")
            except BtfError as e:
                errors.append(str(e))
                break
        else:
            errors.append(None)
    assert errors[0] is not None and errors[0] == errors[1]


@needs_accel
@pytest.mark.parametrize("key", KERNELS)
def test_var_table_identical(key):
    """The C variable table gives what the pure-Python dict gives, for every
    VAR name of the variable BTF, with one DATASEC's base unknown."""
    from pathlib import Path
    if not (Path(__file__).parents[2] / "vmcores" / key / "vars").exists():
        pytest.skip(f"no variable BTF committed for {key}")
    tables = []
    for acc in (False, True):
        vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux", accel=acc)
        v = Btf(fixture_bytes(key, "../vars/btf_global_variables"), vml, name="v", accel=acc)
        nsec = len(list(v.datasecs()))
        bases = [0xffffffff81000000 + (i << 24) for i in range(nsec)]
        bases[1] = None
        tables.append((v, v.var_table(bases[:-1])))  # the last DATASEC: no base given
    (pv, pure), (cv, fast) = tables
    assert isinstance(pure, dict) and isinstance(fast, _ACCEL.VarTable)
    names = {name for _, name, _, _ in pv.var_records()}
    assert len(names) > 20_000 and len(pure) > 15_000
    for name in sorted(names) + ["no_such_var_x", "", "\0", "\ud800", "jiffies\0"]:
        assert fast.get(name) == pure.get(name), name


def test_var_table_corrupt_type():
    """A VAR whose type id is out of range: the same error from both tables."""
    import struct

    from drgn_btfvars.btf import BtfBuilder
    b = BtfBuilder()
    i = b.add_int("int", 4)
    v = b.add_var("x", i)
    b.add_datasec(".data", 4, [(v, 0, 4)])
    blob = bytearray(b.to_bytes())
    struct.pack_into("<I", blob, 24 + 16 + 8, 99)  # the VAR's type word
    errors = set()
    for acc in (False, True):
        with pytest.raises(BtfError) as e:
            Btf(bytes(blob), accel=acc).var_table([0])
        errors.add(str(e.value))
    assert len(errors) == 1 and "out of range" in errors.pop()


@needs_accel
@pytest.mark.parametrize("key", KERNELS)
def test_cycles_identical(key):
    """The C cycle search answers as the Python search does for every type
    of vmlinux, the fixture modules and the variable BTF, both ways."""
    from pathlib import Path
    answers = []
    for acc in (False, True):
        vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux", accel=acc)
        btfs = [vml] + [Btf(fixture_bytes(key, m), vml, name=m, accel=acc) for m in MODULES]
        if (Path(__file__).parents[2] / "vmcores" / key / "vars").exists():
            btfs.append(Btf(fixture_bytes(key, "../vars/btf_global_variables"), vml, name="v",
                            accel=acc))
        answers.append([[(b.contains_itself(i), b.unnamed_cycle(i)) for i in b.ids()]
                        for b in btfs])
    assert answers[0] == answers[1]
    # Real kernels have cycles only through named structs and unions.
    assert not any(a or b for obj in answers[1] for a, b in obj)


@needs_accel
def test_cycles_identical_on_cyclic_btf():
    """Cycles by value, through typedefs, through pointers with and without
    a named struct in between, in a base and in a split object over it."""
    from drgn_btfvars.btf import BtfBuilder
    b = BtfBuilder()
    i = b.add_int("int", 4)
    b.add_struct("s", 8, [("a", i, 0, 0), ("b", b.next_id(), 32, 0)])  # contains itself
    td = b.add_typedef("t", b.next_id() + 1)  # typedef t -> struct u { t x; }
    b.add_struct("u", 4, [("x", td, 0, 0)])
    proto = b.add_func_proto(i, [("f", b.next_id() + 1)])  # f(f *)
    b.add_ptr(proto)
    lh = b.add_struct("list_head", 16, [("next", b.next_id() + 1, 0, 0),
                                        ("prev", b.next_id() + 1, 64, 0)])
    b.add_ptr(lh)
    anon = b.add_struct(None, 8, [("p", b.next_id() + 1, 0, 0)])  # an anonymous self-pointer
    b.add_ptr(anon)
    base_blob = b.to_bytes()
    base = Btf(base_blob)
    s = BtfBuilder(base)
    arr = s.add_array(s.next_id() + 1, i, 2)  # struct v { struct v a[2]; }
    s.add_struct("v", 8, [("a", arr, 0, 0)])
    s.add_ptr(lh)
    split_blob = s.to_bytes()
    assert outcome(base_blob, accel=False) == outcome(base_blob, accel=True)
    pb, cb = Btf(base_blob, accel=False), Btf(base_blob, accel=True)
    assert outcome(split_blob, pb, accel=False) == outcome(split_blob, cb, accel=True)
    facts = [(cb.contains_itself(t), cb.unnamed_cycle(t)) for t in cb.ids()]
    assert [t for t, f in zip(cb.ids(), facts) if f[0]] == [2, 3, 4]
    assert [t for t, f in zip(cb.ids(), facts) if f[1]] == [5, 6, 9, 10]
    split = Btf(split_blob, cb)
    assert [t for t in split.ids() if split.contains_itself(t)] == [split.first_id,
                                                                     split.first_id + 1]


@needs_accel
def test_lookups_from_threads():
    """Name, enumerator and variable lookups from several threads at once
    give what one thread gives (cffi releases the GIL during each C call)."""
    import threading

    key = KERNELS[-1]
    vml = Btf(fixture_bytes(key, "vmlinux"), name="vmlinux")
    names = sorted(vml.names())[::7]
    enums = sorted(vml._build_enum_index())[::3]
    want = [(vml.find(n), vml.find_enumerator(e)) for n, e in zip(names, enums)]
    got = {}

    def work(t):
        got[t] = [(vml.find(n), vml.find_enumerator(e)) for n, e in zip(names, enums)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g == want for g in got.values())
