#!/usr/bin/env bash
# The jobs of one H100 session, run by `scripts/gpu/session.sh launch DIR scripts/gpu/h100_jobs.sh`
# in the repository root with the environment of session.sh. Each job writes under $OUT_DIR/<job>/
# and appends "<job> <exit status> <seconds>" to $OUT_DIR/status.
source scripts/gpu/job.sh
vf() { python3 -m vanilla_flash "$@"; }
cfg=configs/h100-124m.yaml

# issue 3: the best configuration's tokens/s and the Lightning overhead, batch 16 and 32
job overhead_b16 vf bench overhead --config $cfg --set attn=sdpa_cudnn compile=true run_dir=runs/ov16 \
  --steps 40 --out "$OUT_DIR/overhead_b16/overhead.json"
job overhead_b32 vf bench overhead --config $cfg --set attn=sdpa_cudnn compile=true batch_size=32 run_dir=runs/ov32 \
  --steps 40 --out "$OUT_DIR/overhead_b32/overhead.json"
job overhead_b16_cudagraphs vf bench overhead --config $cfg --set attn=sdpa_cudnn compile=true \
  compile_mode=reduce-overhead run_dir=runs/ov16g --steps 40 --out "$OUT_DIR/overhead_b16_cudagraphs/overhead.json"
# issue 4: the attention grid (FlashAttention-2 paper setting) and GPT-2 training per backend
job attention vf bench attention --out "$OUT_DIR/attention/attention.json"
job train_bench vf bench train --out "$OUT_DIR/train_bench/train_bench.json"
# issue 5: the Hopper set, and the flash-attn 1.x (T4) set with the sample (no network here) in fp16
job nb_hopper vf notebooks --target hopper --out "$OUT_DIR/nb_hopper"
job nb_t4 vf notebooks --target t4 --out "$OUT_DIR/nb_t4" --set train.data_source=sample \
  train.precision=16-mixed fa1_source=/tmp/vf/fa1.tar.gz
