# flash-attn's own GPT model, the seed's path (experiments/gpu_machine/driver.sh start
# experiments/h100/fa_gpt_jobs.sh); staged: ds and FA1_ARCHS=90 with fa1.tar.gz. The four fused extensions are
# built (sm90 only, MAX_JOBS from cores and RAM, each timed) from the flash-attn 1.0.9 source archive, then
# transformers' GPT-2 and flash-attn's GPT are compared: logits with the same weights, and tokens/s and memory
# with the fused parts off and on, all variants in one run. dropout_layer_norm (about sixty CUDA files) is
# built last: if it fails, the comparison refuses that variant and runs the rest.
needs_fa1
mkdir -p "$VF/fa1src" && tar xzf "$IN/fa1.tar.gz" -C "$VF/fa1src"
ext() {  # build one extension (or reuse its wheel), install it next to flash-attn
  python3 experiments/h100/build_extension.py "$1" "$VF/fa1src/fa1" "$VF/ext-wheels" "$VF/ext-build"
  local status=$?
  mkdir -p "$OUT_DIR/ext_logs" && cp "$VF/ext-build/$1/build.log" "$OUT_DIR/ext_logs/$1.log" 2> /dev/null
  [ $status = 0 ] && python3 -m pip install -q --no-deps --no-index --target "$VF/fa1/site" "$VF"/ext-wheels/*/"$1"-*.whl
}
job ext_fused_dense ext fused_dense_lib
job ext_xentropy ext xentropy_cuda_lib
job ext_rotary ext rotary_emb
job ext_layer_norm ext dropout_layer_norm
job impl python3 -m vanilla_flash bench impl --out "$OUT_DIR/impl/impl.json"
