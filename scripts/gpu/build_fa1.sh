#!/usr/bin/env bash
# Build flash-attn 1.0.9 from its PyPI source archive on a GPU machine that has no network.
#   scripts/gpu/build_fa1.sh SOURCE.tar.gz PREFIX
# The archive holds the unpacked sdist as fa1/ (with its cutlass copy). The build goes to
# PREFIX/site (put it on PYTHONPATH), its log to PREFIX/build.log, its time to PREFIX/build_seconds,
# and PREFIX/done (exit status) appears when it ends.
set -uo pipefail
src=$1 prefix=$2
mkdir -p "$prefix" && rm -f "$prefix/done"
cp "$src" "$prefix/src.tar.gz" && tar xzf "$prefix/src.tar.gz" -C "$prefix"
if [ -n "${FA1_ARCHS:-}" ]; then
  python3 - "$prefix/fa1/setup.py" "$FA1_ARCHS" <<'PY'
import re, sys
path, keep = sys.argv[1], sys.argv[2].split(",")
text = open(path).read()
pattern = r'(\n[ \t]*)cc_flag\.append\("-gencode"\)\n[ \t]*cc_flag\.append\("arch=compute_(\d+),code=sm_\d+"\)'
text = re.sub(pattern, lambda m: m.group(0) if m.group(2) in keep else m.group(1) + "pass", text)
open(path, "w").write(text)
PY
  echo "compiling for sm_${FA1_ARCHS} only: $(grep -o 'code=sm_[0-9]*' "$prefix/fa1/setup.py" | tr '\n' ' ')"
fi
# one compiler job per core, but no more than RAM/4 GiB: each nvcc job of flash-attn needs a few GiB
cores=$(nproc)
ram_gib=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
jobs=$(( cores < ram_gib / 4 ? cores : ram_gib / 4 ))
echo "MAX_JOBS=$jobs (cores $cores, RAM ${ram_gib} GiB); ninja: $(python3 -m ninja --version 2>/dev/null || ninja --version 2>/dev/null || echo missing)"
start=$(date +%s)
( cd "$prefix/fa1" && MAX_JOBS=$jobs python3 -m pip install -v --no-build-isolation --no-deps \
    --target "$prefix/site" . ) > "$prefix/build.log" 2>&1
status=$?
echo $(( $(date +%s) - start )) > "$prefix/build_seconds"
echo $status > "$prefix/done"
echo "flash-attn 1.0.9 build exit $status in $(cat "$prefix/build_seconds") s"
