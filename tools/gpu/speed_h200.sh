#!/usr/bin/env bash
# The speed jobs on an H200, one after the other in the background, so that they outlive a 10-minute
# call (the datasets wheels in .gpu/ds; the commit in .gpu/commit):
#   tools/gpu/speed_h200.sh start [JOB ...]   JOBs in order (default: loss_kernel speed):
#       loss_kernel    tools/gpu/loss_kernel_bench.py: the Triton loss kernel's settings against torch.compile's
#       grad_match     tools/gpu/grad_match.py: one step's gradients of each model/backend/mask against float32
#       speed          bench speed --config configs/h200-speed.yaml: every variant through Lightning and bare
#       profile        tools/gpu/profile_speed.py: where a step's GPU time goes, plain PyTorch GPT-2, variants
#       from_scratch   tools/gpu/from_scratch_h200.py: the from-scratch CUDA kernel against the libraries
#       loss_curves    tools/gpu/loss_curves.py: transformers' and the vanilla model's loss curves over seeds
#                      (its arguments after OUT.json from $LOSS_CURVES_ARGS)
#   tools/gpu/speed_h200.sh wait SECONDS
#   tools/gpu/speed_h200.sh collect OUT    each job's JSON, its log (paths scrubbed), status, nvidia-smi
set -uo pipefail
vf=/tmp/vf-speed; out=$vf/out
case $1 in
start)
  shift
  jobs=${*:-loss_kernel speed}
  mkdir -p $out
  python3 -m pip install -q --no-index --no-deps --no-compile --target $vf/site .gpu/ds/*.whl
  lines=""
  for name in $jobs; do
    case $name in
      loss_kernel) lines+="job loss_kernel python3 tools/gpu/loss_kernel_bench.py $out/loss_kernel.json"$'\n' ;;
      grad_match) lines+="job grad_match python3 tools/gpu/grad_match.py $out/grad_match.json"$'\n' ;;
      speed) lines+="job speed python3 -m vanilla_flash bench speed --config configs/h200-speed.yaml --steps 40 --out $out/speed.json"$'\n' ;;
      profile) lines+="job profile python3 tools/gpu/profile_speed.py $out/speed_profile.json 400"$'\n' ;;
      from_scratch) lines+="job from_scratch python3 tools/gpu/from_scratch_h200.py $out/from_scratch.json"$'\n' ;;
      loss_curves) lines+="job loss_curves python3 tools/gpu/loss_curves.py $out/loss_curves.json ${LOSS_CURVES_ARGS:-}"$'\n' ;;
      *) echo "unknown job $name"; exit 2 ;;
    esac
  done
  (setsid nohup bash -c "export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out
     export PYTHONPATH=$PWD/scr:$vf/site VANILLA_FLASH_COMMIT=$(cat .gpu/commit 2>/dev/null)
     source tools/gpu/job.sh; nvidia-smi > $out/nvidia-smi.txt
     $lines
     echo done >> $out/status" > $vf/launch.out 2>&1 < /dev/null &)
  echo "started: $jobs" ;;
wait)
  end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; grep -hE "tok/s|rror|OOM" $out/*/log.txt 2>/dev/null | tail -8 ;;
collect)
  cp $out/*.json $out/*.csv $out/*.png $out/status $out/nvidia-smi.txt "$2/" 2>/dev/null
  for log in $out/*/log.txt; do
    name=$(basename "$(dirname "$log")")
    sed "s#/tmp/#\$TMPDIR/#g; s#$PWD/##g" "$log" > "$2/$name-log.txt"
  done
  ls -la "$2" ;;
esac
