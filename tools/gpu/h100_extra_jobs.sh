#!/usr/bin/env bash
# Variants tried for GPT-2 124M throughput after the main benchmarks (run like h100_bench_jobs.sh).
source tools/gpu/job.sh
job overhead_b16_cudagraphs python3 -m vanilla_flash bench overhead --config configs/h100-124m.yaml \
  --set attn=sdpa_cudnn compile=true compile_mode=reduce-overhead run_dir=runs/ov16g --steps 40 \
  --out "$OUT_DIR/overhead_b16_cudagraphs/overhead.json"
