# The notebook sets executed by papermill on an H100 (experiments/gpu_machine/driver.sh start
# experiments/h100/notebook_jobs.sh); staged: ds, nb, fa4a, fa4b, and FA1_ARCHS=90 with fa1.tar.gz. The Hopper
# set with hopper.yaml; the flash-attn 1.x (T4) set with t4.yaml, except: the sample instead of the Hub (no
# network there), and the flash-attn 1.0.9 wheel the driver built (sm90) put in the notebooks' wheel cache,
# where 02_build finds it as it would on Drive in a second Colab session (an sm75 wheel would build but not
# run on an H100).
needs_fa1
mkdir -p runs/wheels && cp -r "$VF"/fa1/wheels/* runs/wheels/
job nb_hopper python3 -m vanilla_flash notebooks --target hopper --out "$OUT_DIR/nb_hopper"
job nb_t4 python3 -m vanilla_flash notebooks --target t4 --out "$OUT_DIR/nb_t4" --set train.data_source=sample \
  fa1_source="$IN/fa1.tar.gz"
