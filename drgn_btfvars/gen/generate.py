"""``drgn-btfvars generate``: a variable BTF from a vmlinux with DWARF.

Steps (each reported):

1. the base: the kernel's final ``.BTF`` (``--base`` or the vmlinux's own
   ``.BTF`` section, which is byte-identical to what the kernel keeps);
2. pahole (≥ 1.28, ``global_var``) encodes every variable as split BTF over
   that base (:mod:`.pahole`);
3. the variables pahole leaves out (extern-declared arrays typed from their
   incomplete declaration, a few filtered name prefixes), typed from DWARF
   through drgn (:mod:`.supplement`; ``dwarf_supplement=False`` to skip);
4. VARs of separately linked objects renamed to their prefixed symbols
   (arm64 ``__kvm_nvhe_``, ``__pi_``, ``__efistub_``; :mod:`.prefixed`);
5. the repairs (:mod:`.repair`): structural re-dedup against the base,
   DATASEC entries sorted and disjoint (duplicates dropped), pruning,
   renumbering;
6. the linker-script alias VARs and the ``btf_global_variables_meta`` enum
   (:mod:`.meta`);
7. self-check (:func:`check_variable_btf`) and, when a bpftool is available,
   ``bpftool btf dump file OUT -B BASE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from drgn_btfvars.btf import Btf, BtfBuilder, BtfKind
from drgn_btfvars.meta import BAD_PROTOS_ENUM_NAME

from . import meta as _meta
from .prefixed import rename_lines, rename_prefixed
from .protos import ProtoCheck, check_prototypes
from .pahole import btf_features, pahole_command, pahole_version, run_pahole
from .repair import RepairReport, repair
from .supplement import SupplementReport, supplement

__all__ = [
    "GenerateResult",
    "extract_btf",
    "check_variable_btf",
    "run_bpftool_check",
    "generate",
]


@dataclasses.dataclass
class GenerateResult:
    """Figures of one generation."""

    output: Path
    pahole_version: str
    btf_features: str
    base_size: int
    raw_size: int
    size: int
    report: RepairReport
    alias_vars: List[str]
    meta: Dict[str, object]
    counts: Dict[str, int]
    seconds_pahole: float
    seconds_total: float
    bpftool: Optional[str] = None   # None: not run; "ok" or the error
    supplement: Optional[SupplementReport] = None
    pahole_counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    protos: Optional[ProtoCheck] = None
    #: VARs renamed to their prefixed symbol (arm64), per prefix (:mod:`.prefixed`)
    renamed: Dict[str, int] = dataclasses.field(default_factory=dict)

    def lines(self) -> List[str]:
        """Human-readable summary."""
        return [
            f"pahole {self.pahole_version} --btf_features={self.btf_features} "
            f"({self.seconds_pahole:.1f} s): "
            + ", ".join(f"{v} {k}" for k, v in self.pahole_counts.items()),
            *([self.supplement.line()] if self.supplement else
              ["variables pahole left out: not added (--no-dwarf-supplement)"]),
            *rename_lines(Counter(self.renamed)),
            *self.report.lines(),
            f"linker-script alias VARs added: {', '.join(self.alias_vars) or 'none'}",
            *([f"function prototypes: {self.protos.summary()}"] if self.protos else
              ["function prototypes: not checked (--no-check-prototypes)"]),
            f"meta: release {self.meta.get('release')}, build-id {self.meta.get('build_id')}, "
            f"{len(self.meta['secaddr'])} section addresses, "  # type: ignore[arg-type]
            f"{len(self.meta['sym'])} symbols",  # type: ignore[arg-type]
            f"sizes: base {self.base_size} B, pahole raw {self.raw_size} B, "
            f"variable BTF {self.size} B ({100.0 * self.size / self.base_size:.1f}% of base)",
            "types: " + ", ".join(f"{v} {k}" for k, v in self.counts.items()),
            f"bpftool btf dump: {self.bpftool or 'not run (no bpftool given/found)'}",
            f"total {self.seconds_total:.1f} s -> {self.output}",
        ]


def extract_btf(elf: Path) -> bytes:
    """The ``.BTF`` section of an ELF file (vmlinux or .ko) of any architecture.

    Read with pyelftools: the host's ``objcopy`` only knows the host's
    architecture (it cannot open an arm64 vmlinux on x86-64).
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(elf, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".BTF")
            if sec is None:
                raise ValueError(f"{elf}: no .BTF section")
            return sec.data()
    except ELFError as e:
        raise ValueError(f"{elf}: not an ELF file ({e})") from e


def check_variable_btf(data: bytes, base: Btf) -> List[str]:
    """Problems of a variable BTF (empty when it is what the kernel accepts and
    the plugin expects): split over ``base``, DATASEC entries sorted and
    disjoint and pointing at VARs, exactly one meta enum with the base's sha."""
    problems: List[str] = []
    try:
        v = Btf(data, base, name="variable BTF")
        v.validate()
    except Exception as e:  # the reader's own diagnosis
        return [f"does not parse as split BTF over the base: {e}"]
    for ds in v.datasecs():
        if ds < v.first_id:
            continue
        t = v.type(ds)
        end = 0
        for s in t.secinfos:
            if s.offset < end:
                problems.append(f"DATASEC {t.name}: entry at {s.offset} overlaps the previous one")
            end = max(end, s.offset + s.size)
            if v.kind(s.type) != BtfKind.VAR:
                problems.append(f"DATASEC {t.name}: entry {s.type} is not a VAR")
        if end > t.size:
            problems.append(f"DATASEC {t.name}: entries end at {end} > size {t.size}")
    ids = [i for i in v.find(_meta.META_ENUM_NAME) if v.kind(i) == BtfKind.ENUM64]
    if len(ids) != 1:
        problems.append(f"{len(ids)} {_meta.META_ENUM_NAME} ENUM64 records (want 1)")
    else:
        m = _meta.decode_meta((e.name, e.value) for e in v.type(ids[0]).enumerators)
        sha = int.from_bytes(hashlib.sha256(base.data).digest()[:8], "big")
        if m.get("format") != _meta.META_FORMAT:
            problems.append(f"meta format {m.get('format')}")
        if m.get("base_sha256") != sha or m.get("base_len") != len(base.data):
            problems.append("meta base sha256/length do not match the base")
        nds = sum(1 for d in v.datasecs() if d >= v.first_id)
        if set(m["secaddr"]) != set(range(nds)):  # type: ignore[arg-type]
            problems.append(f"meta has section addresses for {sorted(m['secaddr'])} "  # type: ignore
                            f"but there are {nds} DATASECs")
    return problems


def run_bpftool_check(bpftool: Sequence[str], out: Path, base: Path) -> str:
    """``bpftool btf dump file OUT -B BASE``: "ok (N lines)" or the error."""
    r = subprocess.run([*bpftool, "btf", "dump", "file", str(out), "-B", str(base)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"FAILED (exit {r.returncode}): {r.stderr.strip()[-500:]}"
    return f"ok ({r.stdout.count(chr(10))} lines)"


def _find_int(base: Btf, b: BtfBuilder, name: str) -> int:
    for tid in base.find_all(name, BtfKind.INT):
        return tid
    return b.add_int(name, 8, 0)


def _alias_vars(base: Btf, split_names: set, info: _meta.VmlinuxInfo,
                b: BtfBuilder) -> List[str]:
    """Add VARs for linker-script aliases (outside any DATASEC); names added."""
    added = []
    for alias, (_target, quals, int_name) in _meta.ALIASES.items():
        if alias in split_names or alias not in info.symbols:
            continue
        tid = _find_int(base, b, int_name)
        for q in reversed(quals):  # the innermost qualifier is the last one
            kind = {"volatile": BtfKind.VOLATILE, "const": BtfKind.CONST}[q]
            found = next((c for c in base.ids() if base.kind(c) == kind
                          and base.type(c).type == tid), None)
            if found is None:
                found = b.add_volatile(tid) if q == "volatile" else b.add_const(tid)
            tid = found
        b.add_var(alias, tid)
        added.append(alias)
    return added


def generate(vmlinux: Path, output: Path, *, base_path: Optional[Path] = None,
             pahole: Optional[str] = None, kernel_pahole: Optional[int] = None,
             features: Optional[str] = None, bpftool: Optional[str] = None,
             raw_output: Optional[Path] = None, dwarf_supplement: bool = True,
             check_protos: bool = True,
             log: Callable[[str], None] = lambda s: None) -> GenerateResult:
    """Generate the variable BTF of ``vmlinux`` into ``output``.

    With ``check_protos``, every function prototype of the base BTF is
    checked against the DWARF function at its symbol, and the names whose
    prototype is another function's are recorded in an enum
    ``btf_global_variables_bad_protos`` (see :mod:`drgn_btfvars.gen.protos`).
    """
    t0 = time.monotonic()
    base_bytes = base_path.read_bytes() if base_path else extract_btf(vmlinux)
    base = Btf(base_bytes, name="base BTF")
    argv = pahole_command(pahole)
    ver = pahole_version(argv)
    kp = kernel_pahole
    if kp is not None and kp != ver[0] * 100 + ver[1]:
        log(f"warning: the kernel was built by pahole {kp // 100}.{kp % 100}, this is "
            f"{ver[0]}.{ver[1]}: types may not deduplicate against the base")
    feats = features or btf_features(kp)
    log(f"pahole {ver[0]}.{ver[1]}: encoding every variable of {vmlinux}")
    info = _meta.read_vmlinux(vmlinux, extra_symbols=_meta.ALIASES)
    with tempfile.TemporaryDirectory(prefix="btfvars-gen-") as tmp:
        bpath = Path(tmp) / "base.btf"
        bpath.write_bytes(base_bytes)
        raw_path = raw_output or Path(tmp) / "vars.raw.btf"
        dt_pahole, _ = run_pahole(argv, vmlinux, bpath, raw_path, feats)
        raw = raw_path.read_bytes()
        sup: Optional[SupplementReport] = None
        to_repair = raw
        if dwarf_supplement:
            to_repair, sup = supplement(raw, base, vmlinux)
            log(sup.line())
        to_repair, renamed = rename_prefixed(to_repair, base, vmlinux)
        log(rename_lines(renamed)[0])
        raw_btf = Btf(raw, base, name="pahole output")
        pahole_counts = {k.name: n for k, n in raw_btf.kind_counts().items()}
        split_var_names = {raw_btf.type(v).name for v in raw_btf.vars() if v >= raw_btf.first_id}
        ds_names = [raw_btf.type(d).name for d in raw_btf.datasecs() if d >= raw_btf.first_id]
        added: List[str] = []

        protos: Optional[ProtoCheck] = None
        if check_protos:
            protos = check_prototypes(vmlinux, base_bytes)
            log(f"function prototypes: {protos.summary()}")

        def extra(b: BtfBuilder, remap: Callable[[int], int]) -> None:
            added.extend(_alias_vars(base, split_var_names, info, b))
            if protos is not None and protos.bad:
                b.add_enum(BAD_PROTOS_ENUM_NAME, 4, [(n, 0) for n in sorted(protos.bad)], False)
            b.add_enum64(_meta.META_ENUM_NAME, 8,
                         _meta.meta_enumerators(base_bytes, info, ds_names, added), False)

        builder, rep = repair(base, to_repair, extra=extra)
        data = builder.to_bytes()
        problems = check_variable_btf(data, base)
        if problems:
            raise ValueError("the repaired variable BTF fails its own check:\n  "
                             + "\n  ".join(problems[:20]))
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(data)
        v = Btf(data, base)
        counts: Dict[str, int] = {}
        for k, n in v.kind_counts().items():
            counts[k.name] = n
        mid = v.find(_meta.META_ENUM_NAME)[0]
        m = _meta.decode_meta((e.name, e.value) for e in v.type(mid).enumerators)
        checked: Optional[str] = None
        bt = shlex.split(bpftool) if bpftool else (
            [shutil.which("bpftool")] if shutil.which("bpftool") else None)
        if bt:
            checked = run_bpftool_check(bt, output, bpath)  # type: ignore[arg-type]
    return GenerateResult(output, f"{ver[0]}.{ver[1]}", feats, len(base_bytes), len(raw),
                          len(data), rep, added, m, counts, dt_pahole,
                          time.monotonic() - t0, checked, sup, pahole_counts, protos,
                          dict(renamed))
