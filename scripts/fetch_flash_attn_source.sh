#!/usr/bin/env bash
# Fetch a flash-attn release's source archive from PyPI and unpack it as DEST/flash-attn-VERSION/:
#   scripts/fetch_flash_attn_source.sh VERSION DEST [PYTHON]      e.g. 1.0.9 or 2.8.3
# PyPI has only source archives for these releases, and preparing their metadata needs CUDA, so
# `pip download` fails on a machine without it; with --no-clean it leaves the unpacked source
# behind, which is all we want.
set -euo pipefail
version=$1 dest=$2 py=${3:-python3}
[ -f "$dest/flash-attn-$version/setup.py" ] && exit 0
tmp=$(mktemp -d)
TMPDIR=$tmp "$py" -m pip download -q --no-deps --no-build-isolation --no-clean "flash-attn==$version" -d "$tmp" \
  > "$tmp/pip.log" 2>&1 || true
src=$(find "$tmp" -maxdepth 3 -type f -name setup.py -path '*flash-attn*' -not -path '*/hopper/*' -printf '%h\n' | head -1)
if [ -z "$src" ]; then echo "could not fetch flash-attn $version's source (see $tmp/pip.log)"; exit 1; fi
mkdir -p "$dest" && rm -rf "$dest/flash-attn-$version" && mv "$src" "$dest/flash-attn-$version" && rm -rf "$tmp"
echo "flash-attn $version source in $dest/flash-attn-$version"
