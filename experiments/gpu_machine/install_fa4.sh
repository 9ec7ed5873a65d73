#!/usr/bin/env bash
# Install flash-attn 4 and its CuTe DSL wheels on a GPU machine that has no network.
#   experiments/gpu_machine/install_fa4.sh PREFIX WHEEL_DIR...
# A wheel too large to move in one piece may arrive split (NAME.whl.partaa, NAME.whl.partab, ...)
# with an md5 file (fa4.md5); the parts are joined and checked first. Prints the site-packages
# folder SITE; use PYTHONPATH=SITE:SITE/nvidia_cutlass_dsl/dsl_packages (pip would run that .pth line).
set -euo pipefail
prefix=$1; shift
work=$prefix/wheels && mkdir -p "$work"
for d in "$@"; do cp "$d"/* "$work"/; done
cd "$work"
for first in *.partaa; do
  [ -e "$first" ] || continue
  whl=${first%.partaa}
  cat "$whl".part* > "$whl" && rm "$whl".part*
done
[ -e fa4.md5 ] && md5sum -c fa4.md5
python3 -m pip install -q --no-index --no-deps --prefix "$prefix/pfx" ./*.whl
echo "$prefix"/pfx/lib/python3*/site-packages
