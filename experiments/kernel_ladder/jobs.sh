# The kernel ladder on a GPU (FA1_ARCHS=compute_75 FA1_HEAD_DIMS=64,128 experiments/gpu_machine/driver.sh start
# experiments/kernel_ladder/jobs.sh); staged: fa1.tar.gz, fa2.tar.gz (its CUTLASS headers, for the Turing
# kernel), turing.tar.gz (ssiu/flash-attention-turing's csrc/flash_attn at the commit in turing_commit).
# The ladder and the Turing kernel build while flash-attn 1.0.9 builds as compute_75 PTX; then the run.
mkdir -p "$VF/turing/csrc/cutlass" && tar xzf "$IN/turing.tar.gz" -C "$VF/turing"
tar xzf "$IN/fa2.tar.gz" -C "$VF/turing/csrc/cutlass" --strip-components=3 flash-attn-2.8.3/csrc/cutlass/include
job build python3 experiments/kernel_ladder/run.py "$OUT_DIR/build.json" --build-only --turing-kernel "$VF/turing"
needs_fa1
job ladder python3 experiments/kernel_ladder/run.py "$OUT_DIR/kernel_ladder.json" --turing-kernel "$VF/turing"
cp "$IN/turing_commit" "$OUT_DIR/turing_commit.txt" 2> /dev/null
# part 2, the backward pass (`... jobs.sh backward`, or after the forward ladder's jobs)
job backward python3 experiments/kernel_ladder/backward.py "$OUT_DIR/kernel_ladder_backward.json" \
  --turing-kernel "$VF/turing"
# part 2, GPT-2 trained through the ladder's kernels on a T4's terms (`... jobs.sh train`; staged: ds too)
job train python3 experiments/kernel_ladder/train.py "$OUT_DIR/kernel_ladder_train.json" --t4
