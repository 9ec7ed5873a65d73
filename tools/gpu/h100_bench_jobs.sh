#!/usr/bin/env bash
# Benchmarks of one H100 session (issues: training throughput, attention and training benchmarks), run by
# `tools/gpu/session.sh launch tools/gpu/h100_bench_jobs.sh` in the repository root with the
# environment of session.sh. Each job writes under $OUT_DIR/<job>/ and appends its status line to
# $OUT_DIR/status (see job.sh). Most wanted first: a session may end early.
source tools/gpu/job.sh
vf() { python3 -m vanilla_flash "$@"; }
cfg=configs/h100-124m.yaml
best=(attn=sdpa_cudnn compile=true)

# the attention grid (FlashAttention-2 paper setting), with the memory sweep and wrapper-vs-direct ratios
job attention vf bench attention --out "$OUT_DIR/attention/attention.json"
# the best configuration's tokens/s and the Lightning overhead, batch 16 and 32
job overhead_b16 vf bench overhead --config $cfg --set "${best[@]}" run_dir=runs/ov16 \
  --steps 40 --out "$OUT_DIR/overhead_b16/overhead.json"
job overhead_b32 vf bench overhead --config $cfg --set "${best[@]}" batch_size=32 run_dir=runs/ov32 \
  --steps 40 --out "$OUT_DIR/overhead_b32/overhead.json"
# GPT-2 124M training per backend and sequence length (no compile: the attention's share shows)
job train_bench vf bench train --out "$OUT_DIR/train_bench/train_bench.json"
