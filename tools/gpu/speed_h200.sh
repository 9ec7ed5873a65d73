#!/usr/bin/env bash
# On an H200, one job after the other in the background, so that they outlive a 10-minute call:
# the from-scratch CUDA kernel against the libraries (tools/gpu/from_scratch_h200.py), then GPT-2
# 124M training speed (bench speed: every variant through Lightning and in the bare loop, MFU
# against a matmul of the same run):
#   tools/gpu/speed_h200.sh start          (needs the datasets wheels in .gpu/ds)
#   tools/gpu/speed_h200.sh wait SECONDS
#   tools/gpu/speed_h200.sh collect OUT    OUT/speed.json, speed.png, speed-log.txt, from_scratch.json, from_scratch-log.txt
set -uo pipefail
vf=/tmp/vf-speed; out=$vf/out
case $1 in
start)
  mkdir -p $out
  python3 -m pip install -q --no-index --no-deps --no-compile --target $vf/site .gpu/ds/*.whl
  (setsid nohup bash -c "export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out
     export PYTHONPATH=$PWD/scr:$vf/site VANILLA_FLASH_COMMIT=$(cat .gpu/commit 2>/dev/null)
     source tools/gpu/job.sh; nvidia-smi > $out/nvidia-smi.txt
     job from_scratch python3 tools/gpu/from_scratch_h200.py $out/from_scratch.json
     job speed python3 -m vanilla_flash bench speed --config configs/h200-speed.yaml --steps 40 --out $out/speed.json
     echo done >> $out/status" > $vf/launch.out 2>&1 < /dev/null &)
  echo started ;;
wait)
  end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; grep -E "tok/s|rror|OOM" $out/speed/log.txt 2>/dev/null | tail -8 ;;
collect)
  cp $out/speed.json $out/speed.png $out/from_scratch.json $out/status $out/nvidia-smi.txt "$2/" 2>/dev/null
  for name in speed from_scratch; do
    sed "s#/tmp/#\$TMPDIR/#g; s#$PWD/##g" $out/$name/log.txt > "$2/$name-log.txt" 2>/dev/null
  done
  ls -la "$2" ;;
esac
