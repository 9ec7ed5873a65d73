#!/usr/bin/env bash
# The jobs of tools/gpu/fa2_h200.sh, in order (run by it in the background): tools/gpu/fa2_h200_jobs.sh VF
set -uo pipefail
vf=$1
source tools/gpu/job.sh
nvidia-smi > $OUT_DIR/nvidia-smi.txt
job build python3 -m vanilla_flash build fa2 --archs 90 --head-dims 64 --source .gpu/fa2.tar.gz \
  --cache runs/wheels --work-dir $vf/build
# what the wheel holds: machine code for sm_90 only, no PTX
wheel=$(ls runs/wheels/*/flash_attn-2.8.3+*.whl | head -1)
mkdir -p $vf/unzipped && python3 -m zipfile -e "$wheel" $vf/unzipped
so=$(ls $vf/unzipped/flash_attn_2_cuda*.so)
{ echo "$(basename "$wheel") $(stat -c %s "$wheel") bytes"; echo "ELF (machine code) per architecture:"
  cuobjdump --list-elf "$so" | grep -o 'sm_[0-9a-z]*' | sort | uniq -c
  echo "PTX: $(cuobjdump --list-ptx "$so" 2>/dev/null | grep -c ptx) files"; } > $OUT_DIR/fa2_wheel_contents.txt 2>&1
job notebooks python3 -m vanilla_flash notebooks --target ampere --out $OUT_DIR/nb \
  --set train.data_source=sample fa2_source=.gpu/fa2.tar.gz
job check python3 -m vanilla_flash check --backends flash_attn_2,sdpa_flash,sdpa --out $OUT_DIR/check_fa2.json
job head_dim_128 python3 tools/gpu/fa2_left_out_call.py $OUT_DIR/head_dim_128_call.json
echo done >> $OUT_DIR/status
