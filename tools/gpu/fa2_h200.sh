#!/usr/bin/env bash
# flash-attn 2 on an H200, through calls of at most 10 minutes: the work runs in a background process
# session that outlives each call.
#   tools/gpu/fa2_h200.sh start          install the carried wheels (.gpu/ds, .gpu/nb), start the run
#   tools/gpu/fa2_h200.sh wait SECONDS   wait for it (at most SECONDS), print its status
#   tools/gpu/fa2_h200.sh collect OUT    OUT/fa2-h200.tar.gz (notebooks, logs, JSON) and the build's JSON
# The run, in order:
# 1. build: flash-attn 2.8.3 from .gpu/fa2.tar.gz, just what GPT-2 needs (head dim 64, sm90, without
#    FA2_LEFT_OUT), timed, into runs/wheels/ (the notebooks' wheel cache);
# 2. notebooks: the flash-attn 2.x set with ampere.yaml, which installs that cached wheel (no rebuild),
#    checks it, trains GPT-2 124M with flash_attn_2 and benchmarks it (the shipped sample instead of
#    the Hub: no network there);
# 3. check: flash_attn_2 against fp32 (forward and gradients, bf16 and fp16) and GPT-2's loss against
#    eager, beside sdpa_flash (FlashAttention-2 inside PyTorch);
# 4. head_dim_128: a direct call the build has no kernels for must stop with the build's message and
#    leave the process usable.
# These are Ampere kernels compiled for sm90 on a Hopper GPU, not an Ampere card.
set -uo pipefail
vf=/tmp/vf-fa2; out=$vf/out
case $1 in
start)
  mkdir -p $out
  python3 -m pip install -q --no-index --no-deps --no-compile --target $vf/site .gpu/ds/*.whl .gpu/nb/*.whl
  cat > $vf/env.sh <<ENV
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out
export PYTHONPATH=$PWD/scr:$vf/site VANILLA_FLASH_COMMIT=$(cat .gpu/commit 2>/dev/null)
ENV
  (setsid nohup bash -c "source $vf/env.sh; bash tools/gpu/fa2_h200_jobs.sh $vf" > $vf/launch.out 2>&1 < /dev/null &)
  echo started ;;
wait)
  end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; tail -2 $vf/build/build.log 2>/dev/null | cut -c1-200; tail -3 $out/notebooks/log.txt 2>/dev/null ;;
collect)
  cp $vf/build/build.json "$2/fa2_build.json" 2>/dev/null
  sed "s#/tmp/#\$TMPDIR/#g; s#$PWD/##g" $vf/build/build.log | gzip > $vf/out/fa2_build.log.gz
  tar czf "$2/fa2-h200.tar.gz" --exclude='*.ckpt' --exclude='*.npy' --exclude='*.whl' -C $vf out \
    -C "$PWD" runs/notebooks 2>/dev/null
  ls -la "$2" ;;
esac
