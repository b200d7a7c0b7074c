"""Regenerate the committed real-BTF fixtures under vmcores/<key>/btf/.

    python3 tests/btf/make_fixtures.py [key ...]

For each pinned kernel: the vmlinux .BTF (from the -dbg vmlinux) and the .BTF of
a few modules from the image/modules package (split over that vmlinux BTF),
each compressed with zstd -19 as ``<name>.btf.zst``. Needs pyelftools and the
``zstandard`` package; fetches the packages through vmcores/kernels.py.
"""

import lzma
import sys
import tempfile
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "vmcores"))
import kernels  # noqa: E402

MODULES = {"ext4": "kernel/fs/ext4/ext4.ko", "loop": "kernel/drivers/block/loop.ko"}


def dump_btf(elf: Path, section: str = ".BTF") -> bytes:
    # pyelftools, not objcopy: the host's objcopy cannot read an arm64 vmlinux.
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        sec = ELFFile(f).get_section_by_name(section)
        if sec is None:
            raise LookupError(f"{elf}: no {section} section")
        return sec.data()


def ko_path(k: "kernels.Kernel", rel: str) -> Path:
    mdir = k.modules_dir()
    for p in (mdir / rel, mdir / (rel + ".xz")):
        if p.exists():
            return p
    raise FileNotFoundError(rel)


def main(keys) -> None:
    cctx = zstandard.ZstdCompressor(level=19)
    for key in keys:
        k = kernels.KERNELS[key]
        outdir = ROOT / "vmcores" / key / "btf"
        outdir.mkdir(parents=True, exist_ok=True)
        blobs = {"vmlinux": dump_btf(k.debug_vmlinux())}
        for mod, rel in MODULES.items():
            p = ko_path(k, rel)
            with tempfile.TemporaryDirectory() as d:
                ko = Path(d) / "m.ko"
                ko.write_bytes(lzma.decompress(p.read_bytes()) if p.suffix == ".xz" else p.read_bytes())
                blobs[mod] = dump_btf(ko)
        for name, blob in blobs.items():
            (outdir / f"{name}.btf.zst").write_bytes(cctx.compress(blob))
            print(key, name, len(blob))


if __name__ == "__main__":
    main(sys.argv[1:] or list(kernels.KERNELS))
