#!/usr/bin/env bash
# Set-up and entry points for a fresh machine (README.rst, "Quick start").
#   bash dev.sh demo [vmcore-key]   install, then open a committed vmcore with BTF only
#   bash dev.sh test [pytest args]  install, then run the whole test suite
# Every install the project needs is here: apt packages and pip.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests and tools use (bpftool: external BTF check;
# libbpf1: benchmark baseline; zstd: fixture decompression by hand).
APT_PACKAGES="bpftool libbpf1 zstd"

setup() {
    local missing=()
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "dev.sh: please install: ${missing[*]}" >&2
        fi
    fi
    python3 -m pip install -q --disable-pip-version-check -e '.[test]'
}

case "${1:-}" in
    demo)
        setup
        shift
        exec python3 vmcores/demo.py "$@"
        ;;
    test)
        setup
        shift
        exec python3 -m pytest "$@"
        ;;
    setup)
        setup
        ;;
    *)
        echo "usage: bash dev.sh {demo [vmcore-key]|test [pytest args]|setup}" >&2
        exit 2
        ;;
esac
