#!/usr/bin/env bash
# Jobs for flash-attn's own GPT model (the seed's path), run like h100_jobs.sh. The four fused
# extensions are built from the flash-attn 1.0.9 source unpacked by build_fa1.sh (/tmp/vf/fa1/fa1).
source scripts/gpu/job.sh
ext() {  # build one extension (sm90 only, 16 jobs), timed, into /tmp/vf/ext-wheels; install it
  python3 - "$1" <<'PY'
import sys
from vanilla_flash import install
r = install.build_fa1_extension(sys.argv[1], "/tmp/vf/fa1/fa1", "/tmp/vf/ext-wheels", archs=["90"],
                                work_dir="/tmp/vf/ext-build")
print(f"{sys.argv[1]}: {r.seconds:.0f} s, wheel {r.wheel}")
PY
  python3 -m pip install -q --no-deps --no-index --target /tmp/vf/fa1/site /tmp/vf/ext-wheels/*/"$1"-*.whl
}
job ext_fused_dense ext fused_dense_lib
job ext_xentropy ext xentropy_cuda_lib
job ext_rotary ext rotary_emb
job impl python3 -m vanilla_flash bench impl --out "$OUT_DIR/impl/impl.json"
job ext_layer_norm ext dropout_layer_norm   # the long one: about sixty CUDA files
