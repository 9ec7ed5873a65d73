# The speed experiment's jobs (experiments/gpu_machine/driver.sh start experiments/speed/jobs.sh [NAME...]);
# staged: ds. Each writes its JSON under $OUT_DIR.
job loss_kernel python3 experiments/speed/loss_kernel.py "$OUT_DIR/loss_kernel.json"
job grad_match python3 experiments/speed/grad_match.py "$OUT_DIR/grad_match.json"
# SPEED_ARGS: more options, e.g. "--plain-batches 64,128" on an 80 GB card
# shellcheck disable=SC2086
job speed python3 -m experiments.speed.run --config configs/h200-speed.yaml --steps 40 --out "$OUT_DIR/speed.json" \
  ${SPEED_ARGS:-}
job profile python3 experiments/speed/step_profile.py "$OUT_DIR/speed_profile.json" 400
# what separates the plain baseline from a nanoGPT-like GPT-2: one change at a time, then all four (plain_probe.py)
job plain_probe python3 experiments/speed/plain_probe.py "$OUT_DIR/plain_probe.json"
# flash-attn 4 on packed q, k, v against three views: the same numbers, and the copy it saves (packed_check.py)
job packed_check python3 experiments/speed/packed_check.py "$OUT_DIR/packed_check.json"
# where the GPU waits in a step of the best in bf16-true, through Lightning and in the bare loop (step_gaps.py)
job step_gaps python3 -m experiments.speed.step_gaps "$OUT_DIR/step_gaps.json" --variant 2
# which attention `auto` should take under torch.compile on Hopper (cuDNN's comes first there): transformers' GPT-2
# at the notebooks' batch, 16, with cuDNN's and with flash-attn 4, each through Lightning and in the bare loop
job auto_compile_cudnn python3 -m vanilla_flash bench overhead --config configs/h100-124m.yaml \
  --set attn=sdpa_cudnn compile=true --steps 30 --out "$OUT_DIR/auto_compile_cudnn.json"
job auto_compile_fa4 python3 -m vanilla_flash bench overhead --config configs/h100-124m.yaml \
  --set attn=flash_attn_4 compile=true --steps 30 --out "$OUT_DIR/auto_compile_fa4.json"
