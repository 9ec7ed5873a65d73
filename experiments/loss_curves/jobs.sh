# The loss-curve experiment (experiments/gpu_machine/driver.sh start experiments/loss_curves/jobs.sh); staged: ds.
# Its arguments after OUT.json from $LOSS_CURVES_ARGS (e.g. "--seeds 1234,1,2 --steps 50").
# shellcheck disable=SC2086
job loss_curves python3 experiments/loss_curves/run.py "$OUT_DIR/loss_curves.json" ${LOSS_CURVES_ARGS:-}
