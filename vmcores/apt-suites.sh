#!/usr/bin/env bash
# Make Debian's trixie, sid and bookworm-backports package lists visible to apt,
# pinned low so that nothing installed on this machine is upgraded from them.
# Kernel packages are only ever *downloaded* from these suites (apt-get download),
# never installed.  Idempotent; needs root.
set -euo pipefail
src=/etc/apt/sources.list.d/drgn-btfvars-suites.sources
pref=/etc/apt/preferences.d/drgn-btfvars-suites
if [ ! -f "$src" ]; then
    cat >"$src" <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie sid bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
fi
if [ ! -f "$pref" ]; then
    cat >"$pref" <<'EOP'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: *
Pin: release n=sid
Pin-Priority: 90
EOP
fi
if [ -z "$(ls /var/lib/apt/lists/*_dists_sid_* 2>/dev/null)" ] || [ "${1:-}" = "--update" ]; then
    apt-get update -qq
fi
