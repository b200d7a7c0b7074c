"""Run pahole to encode every global variable of a DWARF vmlinux as split BTF.

pahole ≥ 1.28 can encode all variables with a static address
(``--btf_features=...,global_var``), as split BTF over a given base
(``--btf_base``), written raw to a file (``--btf_encode_detached``).

The pahole (and the libbpf it links) must be the one that built the kernel
(``CONFIG_PAHOLE_VERSION``): another version encodes some types differently
(multi-dimensional arrays flattened or nested) and then nothing deduplicates
against the base.  The feature list mirrors what the kernel's own build asks
for at that version (facts from ``scripts/Makefile.btf``):

* kernel built with pahole ≤ 1.25: ``var,float,decl_tag,type_tag,enum64``
* kernel built with pahole ≥ 1.26: ``encode_force,var,float,enum64,decl_tag,
  type_tag,optimized_func,consistent_func,decl_tag_kfuncs``

plus ``global_var``.  The pahole command is ``$DRGN_BTFVARS_PAHOLE`` (a shell
word list, e.g. the output of ``python3 vmcores/toolroot.py trixie pahole
--argv``), else ``pahole`` from ``PATH``.
"""

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "MIN_PAHOLE",
    "PaholeError",
    "pahole_command",
    "pahole_version",
    "btf_features",
    "config_pahole_version",
    "run_pahole",
]

#: pahole 1.28 is the first with the ``global_var`` BTF feature.
MIN_PAHOLE = (1, 28)

_FEATURES_OLD = "var,float,decl_tag,type_tag,enum64"
_FEATURES_126 = ("encode_force,var,float,enum64,decl_tag,type_tag,optimized_func,"
                 "consistent_func,decl_tag_kfuncs")


class PaholeError(RuntimeError):
    """pahole is missing, too old, or failed."""


def pahole_command(cmd: Optional[str] = None) -> List[str]:
    """The argv prefix that runs pahole (``cmd``, ``$DRGN_BTFVARS_PAHOLE`` or ``pahole``)."""
    cmd = cmd or os.environ.get("DRGN_BTFVARS_PAHOLE")
    if cmd:
        return shlex.split(cmd)
    exe = shutil.which("pahole")
    if exe is None:
        raise PaholeError(
            f"pahole not found: pahole ≥ {MIN_PAHOLE[0]}.{MIN_PAHOLE[1]} is needed "
            "(Debian's dwarves from trixie or sid; without installing it: "
            "`python3 vmcores/toolroot.py trixie pahole --argv`, given as --pahole)")
    return [exe]


def pahole_version(argv: Sequence[str]) -> Tuple[int, int]:
    """``(major, minor)`` of the pahole ``argv`` runs."""
    try:
        r = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60,
                           check=False)
    except OSError as e:
        raise PaholeError(f"cannot run pahole ({shlex.join(argv)}): {e}") from None
    m = re.search(r"v?(\d+)\.(\d+)", r.stdout + r.stderr)
    if r.returncode != 0 or m is None:
        raise PaholeError(f"cannot tell the pahole version of {shlex.join(argv)}: "
                          f"{(r.stdout + r.stderr).strip()}")
    ver = (int(m.group(1)), int(m.group(2)))
    if ver < MIN_PAHOLE:
        raise PaholeError(
            f"pahole {ver[0]}.{ver[1]} is too old: pahole ≥ {MIN_PAHOLE[0]}.{MIN_PAHOLE[1]} "
            "is needed (--btf_features=global_var); use Debian trixie's (1.30) or sid's (1.32)")
    return ver


def config_pahole_version(config: Path) -> Optional[int]:
    """``CONFIG_PAHOLE_VERSION`` (e.g. 130) of a kernel ``.config``, if set."""
    m = re.search(r"^CONFIG_PAHOLE_VERSION=(\d+)", config.read_text(), re.M)
    return int(m.group(1)) if m else None


def btf_features(kernel_pahole: Optional[int]) -> str:
    """The ``--btf_features`` list for a kernel built by pahole ``kernel_pahole``."""
    base = _FEATURES_OLD if kernel_pahole is not None and kernel_pahole <= 125 else _FEATURES_126
    return base + ",global_var"


def run_pahole(argv: Sequence[str], vmlinux: Path, base: Path, out: Path, features: str,
               jobs: bool = True) -> Tuple[float, str]:
    """Encode ``vmlinux``'s variables as split BTF over ``base`` into ``out``.

    Returns (seconds, pahole's stderr).
    """
    cmd = [*argv]
    if jobs:
        cmd.append("-j")
    cmd += [f"--btf_features={features}", "--lang_exclude=rust", "--btf_base", str(base),
            f"--btf_encode_detached={out}", str(vmlinux)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    dt = time.monotonic() - t0
    if r.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise PaholeError(f"pahole failed ({shlex.join(cmd)}), exit {r.returncode}:\n"
                          f"{(r.stdout + r.stderr).strip()[-2000:]}")
    return dt, r.stderr
