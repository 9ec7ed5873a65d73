#!/usr/bin/env bash
# Build flash-attn 1.0.9 from its PyPI source archive on a GPU machine that has no network.
#   tools/gpu/build_fa1.sh SOURCE.tar.gz PREFIX
# The archive holds the unpacked sdist as fa1/ (with its cutlass copy). The build is the library's
# own (`vanilla_flash.builds.sources.build_fa1`: ninja, MAX_JOBS from cores and RAM, FA1_ARCHS=75 or 90 or
# 75,80 to compile only those architectures); its wheel lands in PREFIX/wheels and is installed into
# PREFIX/site (put it on PYTHONPATH), the log in PREFIX/build.log, the time in PREFIX/build_seconds,
# and PREFIX/done (exit status) appears when it ends. The source stays unpacked in PREFIX/fa1.
set -uo pipefail
src=$1 prefix=$2
scr=$(cd "$(dirname "$0")/../../scr" && pwd)
mkdir -p "$prefix" && rm -f "$prefix/done"
start=$(date +%s)
PYTHONPATH=$scr python3 - "$src" "$prefix" "${FA1_ARCHS:-}" <<'PY'
import sys
from vanilla_flash.builds import sources as builds
from vanilla_flash.builds import install

source, prefix, archs = sys.argv[1], sys.argv[2], sys.argv[3]
result = builds.build_fa1(f"{prefix}/wheels", source=source, archs=archs.split(",") if archs else None,
                           work_dir=prefix)
install.pip_install("--no-deps", "--target", f"{prefix}/site", str(result.wheel))
PY
status=$?
echo $(( $(date +%s) - start )) > "$prefix/build_seconds"
echo $status > "$prefix/done"
echo "flash-attn 1.0.9 build exit $status in $(cat "$prefix/build_seconds") s"
