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
