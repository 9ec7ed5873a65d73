# The H100 benchmarks (experiments/gpu_machine/driver.sh start experiments/h100/jobs.sh); staged: ds, fa4a,
# fa4b, and FA1_ARCHS=90 with fa1.tar.gz (or fa1wheels). Most wanted first: a session may end early.
needs_fa1
vf() { python3 -m vanilla_flash "$@"; }
cfg=configs/h100-124m.yaml
best=(attn=sdpa_cudnn compile=true)
# every backend checked against float32
job check vf check --out "$OUT_DIR/check/backends.json"
# the attention grid (FlashAttention-2 paper setting), with the memory sweep and wrapper-vs-direct ratios
job attention vf bench attention --out "$OUT_DIR/attention/attention.json"
# the best configuration's tokens/s and the Lightning overhead, batch 16 and 32; CUDA graphs
job overhead_b16 vf bench overhead --config $cfg --set "${best[@]}" run_dir=runs/ov16 \
  --steps 40 --out "$OUT_DIR/overhead_b16/overhead.json"
job overhead_b32 vf bench overhead --config $cfg --set "${best[@]}" batch_size=32 run_dir=runs/ov32 \
  --steps 40 --out "$OUT_DIR/overhead_b32/overhead.json"
job overhead_b16_cudagraphs vf bench overhead --config $cfg --set "${best[@]}" compile_mode=reduce-overhead \
  run_dir=runs/ov16g --steps 40 --out "$OUT_DIR/overhead_b16_cudagraphs/overhead.json"
# GPT-2 124M training per backend and sequence length (no compile: the attention's share shows)
job train_bench vf bench train --out "$OUT_DIR/train_bench/train_bench.json"
