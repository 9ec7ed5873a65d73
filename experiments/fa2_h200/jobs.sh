# flash-attn 2 on an H200 (experiments/gpu_machine/driver.sh start experiments/fa2_h200/jobs.sh); staged: ds,
# nb, fa2.tar.gz. In order:
# 1. build: flash-attn 2.8.3, just what GPT-2 needs (head dim 64, sm90, without FA2_LEFT_OUT), timed, into
#    runs/wheels/ (the notebooks' wheel cache); what the wheel holds (machine code for sm_90 only, no PTX);
# 2. notebooks: the flash-attn 2.x set with ampere.yaml, which installs that cached wheel (no rebuild),
#    checks it, trains GPT-2 124M with flash_attn_2 and benchmarks it (the sample: no network there);
# 3. check: flash_attn_2 against fp32 (forward and gradients, bf16 and fp16) and GPT-2's loss against eager,
#    beside sdpa_flash (FlashAttention-2 inside PyTorch);
# 4. head_dim_128: a direct call the build has no kernels for must stop with the build's message and leave
#    the process usable.
# These are Ampere kernels compiled for sm90 on a Hopper GPU, not an Ampere card.
job build python3 -m vanilla_flash build fa2 --archs 90 --head-dims 64 --source "$IN/fa2.tar.gz" \
  --cache runs/wheels --work-dir "$OUT_DIR/build/work"
wheel=$(ls runs/wheels/*/flash_attn-2.8.3+*.whl | head -1)
mkdir -p "$VF/unzipped" && python3 -m zipfile -e "$wheel" "$VF/unzipped"
so=$(ls "$VF"/unzipped/flash_attn_2_cuda*.so)
{
  echo "$(basename "$wheel") $(stat -c %s "$wheel") bytes"
  echo "ELF (machine code) per architecture:"
  cuobjdump --list-elf "$so" | grep -o 'sm_[0-9a-z]*' | sort | uniq -c
  echo "PTX: $(cuobjdump --list-ptx "$so" 2> /dev/null | grep -c ptx) files"
} > "$OUT_DIR/fa2_wheel_contents.txt" 2>&1
job notebooks python3 -m vanilla_flash notebooks --target ampere --out "$OUT_DIR/nb" \
  --set train.data_source=sample fa2_source="$IN/fa2.tar.gz"
job check python3 -m vanilla_flash check --backends flash_attn_2,sdpa_flash,sdpa --out "$OUT_DIR/check_fa2.json"
job head_dim_128 python3 experiments/fa2_h200/left_out_call.py "$OUT_DIR/head_dim_128_call.json"
