# `python -m vanilla_flash check` with flash-attn 1.0.9, 2.8.3 and 4 installed
# (FA1_ARCHS=90 experiments/gpu_machine/driver.sh start experiments/padded_check/jobs.sh); staged: fa1.tar.gz,
# fa2.tar.gz, fa4a, fa4b. flash-attn 2.8.3 (sm90, head dim 64 only) builds while the first check runs.
# 1. fa1: every backend, flash-attn 1.0.9 and 4 side by side (the driver links FA4's `flash_attn/cute` into
#    1.x's package): kernels, GPT-2 124M, and transformers' GPT-2 on padded batches (left and right, eager
#    and torch.compile) against eager -> backends.json
# 2. fa2: flash_attn_2, flash_attn_4 and auto with flash-attn 2.8.3's package first on the path. Its wheel
#    carries an older `flash_attn/cute`, which fails to import with FA4's CuTe DSL (the AttributeError seen
#    on an H100): flash_attn_4 must be named unavailable and auto must take the next backend; the
#    head-dim-64 build must refuse the padded model's head dim 48 by name -> backends_fa2.json
# 3. head_dim_48_calls: `attend` and a GPT-2 forward at head dim 48 must stop with our message.
(python3 -m vanilla_flash build fa2 --archs 90 --head-dims 64 --source "$IN/fa2.tar.gz" --cache "$VF/fa2wheels" \
  --work-dir "$VF/fa2build" --jobs 8 > "$VF/fa2.out" 2>&1) &
needs_fa1
job fa1 python3 -m vanilla_flash check --out "$OUT_DIR/backends.json"
wait
python3 -m pip install -q --no-index --no-deps --target "$VF/fa2site" "$VF"/fa2wheels/*/flash_attn-2.8.3*.whl
fa2_first=${PYTHONPATH//$VF\/fa1\/site/$VF\/fa2site}
job fa2 env PYTHONPATH="$fa2_first" python3 -m vanilla_flash check --backends flash_attn_2,flash_attn_4,auto \
  --out "$OUT_DIR/backends_fa2.json"
job head_dim_48_calls env PYTHONPATH="$fa2_first" python3 experiments/padded_check/head_dim_48_calls.py \
  "$OUT_DIR/fa2_head_dim_48_calls.json"
