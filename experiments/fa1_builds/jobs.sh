# flash-attn 1.0.9 built two ways on a GPU machine, timed, and the smaller build's limits checked
# (experiments/gpu_machine/driver.sh start experiments/fa1_builds/jobs.sh); staged: fa1.tar.gz.
# 1. minimal: just what GPT-2 needs for this GPU (head dim 64, no block-sparse kernels, sm90): installed, then
#    `check` (a head dim 128 row must be refused by name) and a direct head dim 128 call (it must stop with
#    the build's own message, not crash or fail to import);
# 2. shipped: as flash-attn ships it (every head dim and kernel, sm75 + sm80 + sm90).
# Then $OUT_DIR/fa1_builds.json: both builds' facts (experiments/fa1_builds/summary.py).
build() {  # NAME ARCHS HEAD_DIMS: the build's wheel cache, log and build.json under $VF/fa1-builds/NAME
  python3 -m vanilla_flash build fa1 --archs "$2" ${3:+--head-dims "$3"} --source "$IN/fa1.tar.gz" \
    --cache "$VF/fa1-builds/$1/wheels" --work-dir "$VF/fa1-builds/$1"
  sed "s#/tmp/#\$TMPDIR/#g; s#$PWD/##g" "$VF/fa1-builds/$1/build.log" | gzip > "$OUT_DIR/fa1_build_$1.log.gz"
}
minimal() {
  build minimal 90 64 &&
    python3 -m pip install -q --no-deps --target "$VF/fa1-builds/site" "$VF"/fa1-builds/minimal/wheels/*/*.whl &&
    PYTHONPATH=$PYTHONPATH:$VF/fa1-builds/site python3 -m vanilla_flash check --backends flash_attn_1,sdpa \
      --out "$OUT_DIR/check_fa1_hd64_sm90.json" &&
    PYTHONPATH=$PYTHONPATH:$VF/fa1-builds/site python3 experiments/fa1_builds/head_dim_128_call.py \
      "$OUT_DIR/head_dim_128_call.json"
}
job minimal minimal
job shipped build shipped 75,80,90
job summary python3 experiments/fa1_builds/summary.py "$VF/fa1-builds" "$OUT_DIR/fa1_builds.json"
