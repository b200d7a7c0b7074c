"""Boot a kernel in QEMU, insmod a module, and tell whether the kernel kept its BTF.

The minimal acceptance proof for ``btf_global_variables.ko``: 6.1 and 6.12
(``CONFIG_MODULE_ALLOW_BTF_MISMATCH=y``) load a module whose BTF fails the
verifier and silently drop the BTF, so the check is the existence (and
content) of ``/sys/kernel/btf/btf_global_variables`` in the guest, never
insmod's status.  Usage::

    python3 tests/gen/qemu_accept.py VMLINUZ MODULE.ko [--btf VARS.BTF] [--log LOG]

Prints the verdict and exits 0 only if the kernel registered the module BTF
(and, with ``--btf``, byte-identical to that file).  Uses a busybox-static
initramfs, TCG (KVM guests die on this machine), ~10-20 s.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["boot_check", "main"]

_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo BTFVARS-BEGIN
insmod /btf_global_variables.ko
echo "BTFVARS-INSMOD rc=$?"
f=/sys/kernel/btf/btf_global_variables
if [ -e $f ]; then
    echo "BTFVARS-ACCEPTED size=$(wc -c < $f) sha256=$(sha256sum < $f | cut -d' ' -f1)"
else
    echo BTFVARS-REJECTED
fi
ls /sys/kernel/btf | tr '\n' ' '; echo
dmesg | grep -iE 'btf|bpf|btf_global' | tail -n 20
echo BTFVARS-END
poweroff -f
"""


def _initramfs(ko: Path, out: Path, guest_busybox: Optional[Path] = None) -> None:
    busybox = shutil.which("busybox")  # the host's, to write the archive
    if busybox is None:
        raise FileNotFoundError("busybox (Debian busybox-static) is needed")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy(guest_busybox or busybox, root / "bin" / "busybox")
        (root / "init").write_text(_INIT)
        (root / "init").chmod(0o755)
        shutil.copy(ko, root / "btf_global_variables.ko")
        names = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True,
                               check=True).stdout
        with open(out, "wb") as f:
            subprocess.run([busybox, "cpio", "-o", "-H", "newc"], cwd=root, input=names.encode(),
                           stdout=f, stderr=subprocess.DEVNULL, check=True)


def boot_check(vmlinuz: Path, ko: Path, log: Optional[Path] = None,
               timeout: float = 180, qemu: Optional[List[str]] = None, console: str = "ttyS0",
               busybox: Optional[Path] = None) -> Dict[str, object]:
    """Boot ``vmlinuz`` with ``ko`` and return what the guest saw.

    ``qemu`` is the QEMU binary with its accelerator/machine/CPU options
    (default x86-64), ``console`` the guest's serial console and ``busybox``
    a static busybox of the guest's architecture (default the host's).
    """
    qemu = qemu or ["qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-cpu", "max,la57=off"]
    with tempfile.TemporaryDirectory() as tmp:
        initrd = Path(tmp) / "initrd.cpio"
        _initramfs(ko, initrd, busybox)
        log = log or Path(tmp) / "serial.log"
        cmd = [*qemu,
               "-smp", "1", "-m", "512M", "-nographic", "-no-reboot", "-monitor", "none",
               "-serial", f"file:{log}", "-kernel", str(vmlinuz), "-initrd", str(initrd),
               "-append", f"console={console} panic=-1 loglevel=4"]
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout, check=False)
        text = log.read_text(errors="replace")
    m = re.search(r"BTFVARS-BEGIN(.*?)BTFVARS-END", text, re.S)
    body = m.group(1) if m else ""
    acc = re.search(r"BTFVARS-ACCEPTED size=(\d+) sha256=(\w+)", body)
    rc = re.search(r"BTFVARS-INSMOD rc=(\d+)", body)
    return {
        "booted": m is not None,
        "insmod_rc": int(rc.group(1)) if rc else None,
        "accepted": acc is not None,
        "size": int(acc.group(1)) if acc else None,
        "sha256": acc.group(2) if acc else None,
        "guest_output": body.strip() if m else text[-3000:],
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vmlinuz", type=Path)
    ap.add_argument("module", type=Path)
    ap.add_argument("--btf", type=Path, help="the variable BTF the module must carry")
    ap.add_argument("--log", type=Path, help="keep the serial log here")
    a = ap.parse_args(argv)
    r = boot_check(a.vmlinuz, a.module, a.log)
    print(r["guest_output"])
    ok = bool(r["accepted"])
    if ok and a.btf is not None:
        want = hashlib.sha256(a.btf.read_bytes()).hexdigest()
        if r["sha256"] != want:
            print(f"MISMATCH: guest BTF sha256 {r['sha256']} != {want}")
            ok = False
    print("ACCEPTED" if ok else "NOT ACCEPTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
