#!/usr/bin/env bash
# Fetch flash-attn 1.0.9's source archive from PyPI and unpack it as DEST/flash-attn-1.0.9/:
#   scripts/fetch_fa1_source.sh DEST [PYTHON]
# PyPI has only the source archive, and preparing its metadata needs CUDA, so `pip download` fails
# on a machine without it; with --no-clean it leaves the unpacked source behind, which is all we want.
set -euo pipefail
dest=$1 py=${2:-python3}
[ -f "$dest/flash-attn-1.0.9/setup.py" ] && exit 0
tmp=$(mktemp -d)
TMPDIR=$tmp "$py" -m pip download -q --no-deps --no-build-isolation --no-clean flash-attn==1.0.9 -d "$tmp" \
  > "$tmp/pip.log" 2>&1 || true
src=$(find "$tmp" -maxdepth 3 -type f -name setup.py -path '*flash-attn*' -printf '%h\n' | head -1)
if [ -z "$src" ]; then echo "could not fetch flash-attn 1.0.9's source (see $tmp/pip.log)"; exit 1; fi
mkdir -p "$dest" && rm -rf "$dest/flash-attn-1.0.9" && mv "$src" "$dest/flash-attn-1.0.9" && rm -rf "$tmp"
echo "flash-attn 1.0.9 source in $dest/flash-attn-1.0.9"
