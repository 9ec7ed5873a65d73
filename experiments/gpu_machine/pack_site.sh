#!/usr/bin/env bash
# Where each transfer to the GPU machine is small: the wheels prepare_offline.sh gathered, installed here
# for the GPU machine's Python into one site folder, then packed as one xz tarball cut in parts.
#   experiments/gpu_machine/pack_site.sh OUT MIB WHEEL_DIR...     (PYTHON=3.12 by default)
# OUT/pack1, OUT/pack2, ...: one part of at most MIB MiB each (pack1 also holds site.md5). Installed and
# xz'd, flash-attn 4's wheels and datasets' take 73 MB instead of the wheels' 110 (the CuTe DSL's
# 92 MB wheel alone is 64 MB). `driver.sh stage OUT/packN` each, then `driver.sh start` unpacks the site.
set -euo pipefail
out=$1 mib=$2; shift 2
work=$(mktemp -d)
# a wheel cut in parts by prepare_offline.sh is joined first
for d in "$@"; do cp "$d"/* "$work"/; done
for first in "$work"/*.partaa; do
  [ -e "$first" ] || continue
  cat "${first%.partaa}".part* > "${first%.partaa}" && rm "${first%.partaa}".part*
done
[ -e "$work/fa4.md5" ] && (cd "$work" && md5sum -c fa4.md5 && rm fa4.md5)
python3 -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version "${PYTHON:-3.12}" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --target "$work/site" "$work"/*.whl
rm -rf "$work/site/bin"  # console scripts, their first line naming this machine's Python
tar cf - -C "$work/site" . | xz -T0 -9e > "$work/site.tar.xz"
(cd "$work" && md5sum site.tar.xz > site.md5 && split -b "${mib}M" site.tar.xz site.tar.xz.part)
i=0
for part in "$work"/site.tar.xz.part*; do
  i=$((i + 1)) && mkdir -p "$out/pack$i" && mv "$part" "$out/pack$i/"
done
mv "$work/site.md5" "$out/pack1/" && rm -rf "$work"
du -sh "$out"/pack*
