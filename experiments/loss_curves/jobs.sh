# The loss-curve experiment (experiments/gpu_machine/driver.sh start experiments/loss_curves/jobs.sh); staged: ds.
# Its arguments after OUT.json from $LOSS_CURVES_ARGS (e.g. "--seeds 1234:3 --steps 50").
# shellcheck disable=SC2086
job loss_curves python3 experiments/loss_curves/run.py "$OUT_DIR/loss_curves.json" ${LOSS_CURVES_ARGS:-}
# the speed experiment's best with its blocks' matmuls in float8, against the same in bf16 (issue 32)
job float8_curves python3 experiments/loss_curves/run.py "$OUT_DIR/float8_curves.json" --configs \
  "vanilla, bf16 residual;vanilla, bf16 residual, float8 tensorwise;vanilla, bf16 residual, float8 rowwise"
# the speed experiment's best in pure bf16 training (precision bf16-true), against the same in mixed precision
job bf16_weights_curves python3 experiments/loss_curves/run.py "$OUT_DIR/bf16_weights_curves.json" --hf-runs 1 \
  --configs "vanilla, bf16 residual;vanilla, bf16 residual, bf16 weights"
# the same three times as long (150 steps): where pure bf16's rounding of small updates would show
job bf16_weights_curves_150 python3 experiments/loss_curves/run.py "$OUT_DIR/bf16_weights_curves_150.json" \
  --hf-runs 1 --steps 150 --configs "vanilla, bf16 residual;vanilla, bf16 residual, bf16 weights"
