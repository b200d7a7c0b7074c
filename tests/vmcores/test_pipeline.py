"""Unit tests of the fixture pipeline's pieces that need neither QEMU nor a kernel."""

from __future__ import annotations

import json
import socket
import stat
import struct
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from vmcores import build, fixtures


def parse_newc(data: bytes) -> Dict[str, Tuple[int, bytes, Tuple[int, int]]]:
    """name -> (mode, data, rdev) of a newc cpio archive."""
    out = {}
    off = 0
    while True:
        assert data[off:off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i:off + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        off += 110
        name = data[off:off + namesize - 1].decode()
        off += namesize
        off += -off % 4
        body = data[off:off + filesize]
        off += filesize
        off += -off % 4
        if name == "TRAILER!!!":
            break
        out[name] = (mode, body, (rmaj, rmin))
    assert len(data) % 512 == 0
    return out


def test_cpio_newc() -> None:
    c = build.Cpio()
    c.dir("bin")
    c.file("bin/x", b"hello", 0o755)
    c.symlink("bin/sh", "busybox")
    c.chardev("dev/console", 5, 1)
    entries = parse_newc(c.finish())
    assert stat.S_ISDIR(entries["bin"][0])
    assert entries["bin/x"][1] == b"hello" and entries["bin/x"][0] & 0o777 == 0o755
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)


def test_module_name() -> None:
    assert build.module_name("kernel/fs/ext4/ext4.ko.xz") == "ext4"
    assert build.module_name("kernel/crypto/crc32c-cryptoapi.ko.zst") == "crc32c_cryptoapi"
    assert build.module_name("x/loop.ko") == "loop"


def test_load_order(tmp_path: Path) -> None:
    d = tmp_path / "lib/modules/1.0"
    d.mkdir(parents=True)
    (d / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz\n"
        "kernel/fs/jbd2/jbd2.ko.xz:\n"
        "kernel/fs/mbcache.ko.xz:\n"
        "kernel/lib/crc16.ko.xz:\n"
        "kernel/a.ko.xz: kernel/b.ko.xz kernel/c.ko.xz\n"
        "kernel/b.ko.xz: kernel/c.ko.xz\n"
        "kernel/c.ko.xz:\n"
    )
    (d / "modules.builtin").write_text("kernel/drivers/block/loop.ko\n")
    tree = build.ModuleTree(d, "1.0")
    order = tree.load_order(["ext4", "a"])
    assert order.index("ext4") > max(order.index(m) for m in ("jbd2", "mbcache", "crc16"))
    assert order.index("c") < order.index("b") < order.index("a")
    assert len(order) == len(set(order)) == 7
    assert "loop" in tree.builtin


def test_init_script_orders_extra_after_stock() -> None:
    s = build.init_script(["qemu_fw_cfg", "ext4"], ["btf_global_variables"])
    lines = s.splitlines()
    assert lines[0] == "#!/bin/sh"
    idx = {m: next(i for i, l in enumerate(lines) if f"/{m}.ko" in l)
           for m in ("qemu_fw_cfg", "ext4", "btf_global_variables")}
    assert idx["qemu_fw_cfg"] < idx["ext4"] < idx["btf_global_variables"]
    assert "ls /sys/kernel/btf/" in s and "[ -e /sys/kernel/btf/btf_global_variables ]" in s
    assert build.EXTRA_OK in s and lines.index(f'echo "{build.MARKER}"') > idx["btf_global_variables"]
    assert "drop_caches" in s


def test_parse_extra(tmp_path: Path) -> None:
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF")
    assert build.parse_extra([f"trixie={ko}"]) == {"trixie": [ko.resolve()]}
    with pytest.raises(SystemExit):
        build.parse_extra([f"nosuchkernel={ko}"])
    with pytest.raises(SystemExit):
        build.parse_extra([f"trixie={tmp_path / 'missing.ko'}"])


def test_qmp_client(tmp_path: Path) -> None:
    """The QMP client negotiates, skips events and raises on errors."""
    path = tmp_path / "qmp.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    seen: List[str] = []

    def serve() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for line in f:
            cmd = json.loads(line)["execute"]
            seen.append(cmd)
            if cmd == "stop":
                f.write(b'{"event": "STOP"}\n{"return": {}}\n')
            elif cmd == "bad":
                f.write(b'{"error": {"class": "GenericError", "desc": "nope"}}\n')
            else:
                f.write(b'{"return": {}}\n')
            f.flush()
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    q = build.Qmp(path, timeout=5)
    assert q.command("stop") == {}
    with pytest.raises(RuntimeError, match="nope"):
        q.command("bad")
    q.close()
    t.join(5)
    srv.close()
    assert seen == ["qmp_capabilities", "stop", "bad"]


def test_vmcoreinfo_note(tmp_path: Path) -> None:
    desc = b"OSRELEASE=6.12.0\nKERNELOFFSET=1a000000\n"
    name = b"VMCOREINFO\0"
    note = struct.pack("<III", len(name), len(desc), 0) + name + b"\0" * (-len(name) % 4) + desc
    note += b"\0" * (-len(note) % 4)
    phoff = 64
    data_off = phoff + 56
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, phoff)
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, data_off, 0, 0, len(note), len(note), 4)
    p = tmp_path / "core"
    p.write_bytes(bytes(ehdr) + phdr + note)
    info = fixtures.vmcoreinfo(p)
    assert info == {"OSRELEASE": "6.12.0", "KERNELOFFSET": "1a000000"}


def test_available_is_consistent() -> None:
    for key in fixtures.available():
        assert (fixtures.fixture_dir(key) / "vmcore.zst").is_file()
