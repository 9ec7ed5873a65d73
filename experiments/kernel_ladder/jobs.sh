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
# part 2, the backend from_scratch (the two kernels under autograd) against float32, kernels and GPT-2, as
# compute_75 PTX and as this GPU's code (`... jobs.sh check_compute_75 check_native`)
checked="eager,sdpa,sdpa_efficient,flash_attn_1,from_scratch"
job check_compute_75 env VANILLA_FLASH_FROM_SCRATCH_ARCH=compute_75 \
  python3 -m vanilla_flash check --backends "$checked" --out "$OUT_DIR/check_compute_75.json"
job check_native python3 -m vanilla_flash check --backends "$checked" --out "$OUT_DIR/check_native.json"
# part 2, GPT-2 trained through the ladder's kernels on a T4's terms and natively (`... jobs.sh train_t4
# train_native`; staged: ds too)
job train_t4 python3 experiments/kernel_ladder/train.py "$OUT_DIR/train_t4.json" --t4
job train_native python3 experiments/kernel_ladder/train.py "$OUT_DIR/train_native.json"
# part 2, the vanilla model (and transformers' GPT-2) through from_scratch as compute_75 PTX (`... jobs.sh
# check_vanilla`)
job check_vanilla env VANILLA_FLASH_FROM_SCRATCH_ARCH=compute_75 \
  python3 -m vanilla_flash check --backends sdpa,from_scratch --quick --out "$OUT_DIR/check_vanilla.json"
# part 2, the same over notebook 3's 600 steps, where two sdpa runs have time to part (`... jobs.sh train_t4_600`)
job train_t4_600 python3 experiments/kernel_ladder/train.py "$OUT_DIR/train_t4_600.json" --t4 --steps 600 \
  --backends sdpa,sdpa,from_scratch
