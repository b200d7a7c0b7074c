"""The kernel itself accepts the module's BTF (opt-in: boots QEMU, ~5-10 s per kernel).

Run with ``DRGN_BTFVARS_QEMU=1``; needs ``qemu-system-x86_64`` (``qemu-system-aarch64``
for arm64 kernels), ``busybox``
(busybox-static), the unpacked kernel image and the module built by
``python3 vmcores/toolroot.py fakemod <key>`` in ``<cache>/fakemod/<key>/``.
"""

import hashlib
import os
import shutil

import pytest

from .conftest import KERNELS, cache_dir, vmcores_module


@pytest.mark.parametrize("key", KERNELS)
def test_module_btf_registered(key, tmp_path):
    if not os.environ.get("DRGN_BTFVARS_QEMU"):
        pytest.skip("set DRGN_BTFVARS_QEMU=1 to boot the kernels in QEMU")
    k = vmcores_module("kernels").KERNELS[key]
    g = vmcores_module("build").GUEST_ARCHES[k.arch]
    if not (shutil.which(g.qemu) and shutil.which("busybox")):
        pytest.skip(f"{g.qemu} and busybox (busybox-static) are needed")
    d = cache_dir() / "fakemod" / key
    ko, btf = d / "btf_global_variables.ko", d / "vars.btf"
    if not ko.exists() or not (cache_dir() / "kernels" / key / "image" / ".done").exists():
        pytest.skip(f"no module/kernel image for {key} (python3 vmcores/toolroot.py fakemod {key})")
    from .qemu_accept import boot_check

    busybox = k.busybox() if "busybox" in k.packages else None  # the guest's architecture
    r = boot_check(k.vmlinuz(), ko, tmp_path / "serial.log", qemu=[g.qemu, *g.machine],
                   console=g.console, busybox=busybox)
    assert r["booted"], r["guest_output"]
    # 6.1/6.12 load a module whose BTF fails verification and drop the BTF silently:
    # only /sys/kernel/btf/btf_global_variables proves acceptance.
    assert r["accepted"], r["guest_output"]
    assert r["sha256"] == hashlib.sha256(btf.read_bytes()).hexdigest()
