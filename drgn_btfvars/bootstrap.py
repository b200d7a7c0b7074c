"""Link-time addresses of the few kernel symbols that locate BTF, per build.

Finding the vmlinux BTF (``__start_BTF``/``__stop_BTF``) and the module BTF
list (``btf_modules``) in a dump needs kallsyms, and drgn's kallsyms loader
decodes every symbol (0.3–1 s). These addresses are fixed for a kernel build
up to the KASLR offset, so after a first session they are kept on disk,
keyed by the build ID from VMCOREINFO, as link-time addresses
(runtime address − ``KERNELOFFSET``). A later session on the same build (any
boot, any dump) reads the BTF without loading kallsyms.

Nothing read from this cache is trusted blindly: every address is checked by
the reader that uses it (the BTF must parse and, with a variable BTF, match
its recorded SHA-256; list heads must be consistent; ``_stext`` must equal
VMCOREINFO's), and a failed check drops the entry.

The entry also keeps the SHA-256 prefix of this build's vmlinux BTF, with the
length and CRC-32 of the bytes it was computed from: a later session whose
vmlinux BTF has that length and CRC-32 takes the prefix from here instead of
hashing 5 MB again (and importing hashlib); bytes that differ (a damaged
copy) miss and are hashed.

The file is a few lines of text (``link NAME ADDRESS``, ``base_btf LENGTH
CRC32 SHA256-PREFIX``): reading it must cost less than importing json.

The cache lives in ``$DRGN_BTFVARS_CACHE`` or ``$XDG_CACHE_HOME/drgn-btfvars``
(``~/.cache/drgn-btfvars``); ``DRGN_BTFVARS_NO_CACHE=1`` disables it.
"""

import os
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

__all__ = ("BOOTSTRAP_SYMBOLS", "BootstrapCache", "cache_dir")

#: The symbols cached: BTF bounds, the module BTF list, the kernel's text
#: range (main module address range for ORC), the module list.
BOOTSTRAP_SYMBOLS = ("__start_BTF", "__stop_BTF", "btf_modules", "modules", "_stext", "_end")

_BUILD_ID_RE = re.compile(r"^[0-9a-f]{8,128}$")
_HEADER = "drgn-btfvars bootstrap 2"


def cache_dir() -> Path:
    env = os.environ.get("DRGN_BTFVARS_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "drgn-btfvars"


class BootstrapCache:
    """Cached link-time addresses for one kernel build."""

    def __init__(self, build_id: str, kaslr_offset: int) -> None:
        self.build_id = build_id.lower()
        self.kaslr_offset = kaslr_offset
        self.enabled = bool(_BUILD_ID_RE.match(self.build_id)) and not os.environ.get(
            "DRGN_BTFVARS_NO_CACHE"
        )
        self._links: Optional[Dict[str, int]] = None
        self._digests: Dict[Tuple[int, int], int] = {}

    @property
    def path(self) -> Path:
        return cache_dir() / "bootstrap" / f"{self.build_id}.txt"

    def _load(self) -> Dict[str, int]:
        if self._links is None:
            self._links = {}
            if self.enabled:
                try:
                    self._parse(self.path.read_text())
                except (OSError, ValueError):
                    self._links, self._digests = {}, {}
        return self._links

    def _parse(self, text: str) -> None:
        lines = text.splitlines()
        if not lines or lines[0] != _HEADER:
            return
        links: Dict[str, int] = {}
        digests: Dict[Tuple[int, int], int] = {}
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "link" and parts[1] in BOOTSTRAP_SYMBOLS:
                links[parts[1]] = int(parts[2]) & 0xFFFFFFFFFFFFFFFF
            elif len(parts) == 4 and parts[0] == "base_btf":
                digests[(int(parts[1]), int(parts[2]))] = int(parts[3], 16)
            elif len(parts) == 2 and parts[0] == "build_id" and parts[1] != self.build_id:
                return  # another build's file under this name
        self._links, self._digests = links, digests

    def links(self) -> Dict[str, int]:
        """The cached link-time addresses (a copy)."""
        return dict(self._load())

    def address(self, name: str) -> Optional[int]:
        """The runtime address of ``name`` from the cache, or ``None``."""
        link = self._load().get(name)
        if link is None:
            return None
        return (link + self.kaslr_offset) & 0xFFFFFFFFFFFFFFFF

    def base_digest(self, length: int, crc32: int) -> Optional[int]:
        """The SHA-256 prefix (8 bytes, big-endian) recorded for vmlinux BTF
        bytes of this length and CRC-32, or ``None``."""
        self._load()
        return self._digests.get((length, crc32))

    def store(self, addresses: Dict[str, int]) -> None:
        """Record runtime addresses (converted to link-time) atomically."""
        if not self.enabled or not addresses:
            return
        links = dict(self._load())
        links.update({k: (v - self.kaslr_offset) & 0xFFFFFFFFFFFFFFFF
                      for k, v in addresses.items() if k in BOOTSTRAP_SYMBOLS})
        if links == self._links and self.path.exists():
            return
        self._links = links
        self._write()

    def store_base_digest(self, length: int, crc32: int, digest: int) -> None:
        """Record the SHA-256 prefix of vmlinux BTF bytes of this length and CRC-32."""
        if not self.enabled:
            return
        self._load()
        if self._digests.get((length, crc32)) == digest:
            return
        self._digests = {(length, crc32): digest}  # one vmlinux BTF per build
        self._write()

    def _write(self) -> None:
        import tempfile  # only when writing (once per kernel build)

        lines = [_HEADER, f"build_id {self.build_id}"]
        lines += [f"link {k} {v}" for k, v in sorted((self._links or {}).items())]
        lines += [f"base_btf {n} {c} {d:016x}" for (n, c), d in self._digests.items()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only home is no reason to fail a debugging session

    def forget(self) -> None:
        """Drop this build's entry (an address failed its check)."""
        self._links = {}
        self._digests = {}
        try:
            self.path.unlink()
        except OSError:
            pass
