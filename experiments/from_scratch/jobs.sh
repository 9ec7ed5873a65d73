# The from-scratch CUDA kernel against the libraries (experiments/gpu_machine/driver.sh start
# experiments/from_scratch/jobs.sh); staged: fa4a, fa4b, and FA1_ARCHS=90 with fa1.tar.gz for flash-attn 1.x.
job from_scratch python3 experiments/from_scratch/run.py "$OUT_DIR/from_scratch.json"
