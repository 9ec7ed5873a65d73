#!/usr/bin/env bash
# Jobs for flash-attn's own GPT model (the seed's path), run like h100_bench_jobs.sh. The four fused
# extensions are built (sm90 only, MAX_JOBS from cores and RAM, each timed) from the flash-attn 1.0.9
# source archive, then HF GPT-2 and flash-attn's GPT are compared: logits with the same weights, and
# tokens/s and memory with the fused parts off and on, all variants in one run. dropout_layer_norm (about
# sixty CUDA files) is built last: if it fails, the comparison refuses that variant and runs the rest.
source tools/gpu/job.sh
mkdir -p "$VF/fa1src" && tar xzf "$VF/in/fa1.tar.gz" -C "$VF/fa1src"
ext() {  # build one extension into $VF/ext-wheels (or reuse it there), install it next to flash-attn
  python3 - "$1" <<'PY'
import os, sys
from vanilla_flash.builds import fused as fused_extensions
vf = os.environ["VF"]
r = fused_extensions.build_extension(sys.argv[1], f"{vf}/fa1src/fa1", f"{vf}/ext-wheels", archs=["90"],
                                work_dir=f"{vf}/ext-build")
print(f"{sys.argv[1]}: {r.seconds:.0f} s, wheel {r.wheel}")
PY
  local status=$?
  mkdir -p "$OUT_DIR/ext_logs" && cp "$VF/ext-build/$1/build.log" "$OUT_DIR/ext_logs/$1.log" 2>/dev/null
  [ $status = 0 ] && python3 -m pip install -q --no-deps --no-index --target "$VF/fa1/site" "$VF"/ext-wheels/*/"$1"-*.whl
}
job ext_fused_dense ext fused_dense_lib
job ext_xentropy ext xentropy_cuda_lib
job ext_rotary ext rotary_emb
job ext_layer_norm ext dropout_layer_norm
job impl python3 -m vanilla_flash bench impl --out "$OUT_DIR/impl/impl.json"
