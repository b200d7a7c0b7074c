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

The cache lives in ``$DRGN_BTFVARS_CACHE`` or ``$XDG_CACHE_HOME/drgn-btfvars``
(``~/.cache/drgn-btfvars``); ``DRGN_BTFVARS_NO_CACHE=1`` disables it.
"""

import json
import os
import re
from pathlib import Path
from typing import Dict, Optional

__all__ = ("BOOTSTRAP_SYMBOLS", "BootstrapCache", "cache_dir")

#: The symbols cached: BTF bounds, the module BTF list, the kernel's text
#: range (main module address range for ORC), the module list.
BOOTSTRAP_SYMBOLS = ("__start_BTF", "__stop_BTF", "btf_modules", "modules", "_stext", "_end")

_BUILD_ID_RE = re.compile(r"^[0-9a-f]{8,128}$")


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

    @property
    def path(self) -> Path:
        return cache_dir() / "bootstrap" / f"{self.build_id}.json"

    def _load(self) -> Dict[str, int]:
        if self._links is None:
            self._links = {}
            if self.enabled:
                try:
                    raw = json.loads(self.path.read_text())
                    self._links = {
                        k: int(v) for k, v in raw.get("links", {}).items()
                        if k in BOOTSTRAP_SYMBOLS and isinstance(v, int)
                    }
                except (OSError, ValueError, AttributeError):
                    self._links = {}
        return self._links

    def address(self, name: str) -> Optional[int]:
        """The runtime address of ``name`` from the cache, or ``None``."""
        link = self._load().get(name)
        if link is None:
            return None
        return (link + self.kaslr_offset) & 0xFFFFFFFFFFFFFFFF

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
        import tempfile  # only when writing (once per kernel build)

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                json.dump({"build_id": self.build_id, "links": links}, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only home is no reason to fail a debugging session

    def forget(self) -> None:
        """Drop this build's entry (an address failed its check)."""
        self._links = {}
        try:
            self.path.unlink()
        except OSError:
            pass
