#!/usr/bin/env bash
# The flash-attn 1.x (T4) notebook set on an H200 standing in for a Colab T4, through calls of at
# most 10 minutes: the work runs in a background process session that outlives each call.
#   tools/gpu/t4_stand_in.sh start          install the carried wheels (.gpu/ds, .gpu/nb), start the run
#   tools/gpu/t4_stand_in.sh rerun NB...    the same, running only NB... (to OUT/nb_rerun)
#   tools/gpu/t4_stand_in.sh wait SECONDS   wait for it (at most SECONDS), print its status
#   tools/gpu/t4_stand_in.sh collect OUT    OUT/t4_twin.json and OUT/t4-twin.tar.gz (notebooks, logs)
# The run: the four notebooks with t4.yaml, in order, with the GPU's memory capped at a T4's 15 GiB,
# the shipped sample instead of the Hub (no network there), and flash-attn 1.0.9 built by 02_build
# from .gpu/fa1.tar.gz as compute_75 PTX only, which the driver compiles for the H200 when it loads
# (the Turing build, not an sm90 one); then 01_install again, as a second Colab session would open it.
set -uo pipefail
vf=/tmp/vf-t4; out=$vf/out
case $1 in
start|rerun)
  mkdir -p $out
  python3 -m pip install -q --no-index --no-deps --no-compile --target $vf/site .gpu/ds/*.whl .gpu/nb/*.whl
  cat > $vf/env.sh <<ENV
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out
export PYTHONPATH=$PWD/scr:$vf/site VANILLA_FLASH_COMMIT=$(cat .gpu/commit 2>/dev/null)
ENV
  sets=(--set train.data_source=sample gpu_memory_gib=15 'fa1_archs=["compute_75"]' fa1_source=.gpu/fa1.tar.gz)
  (setsid nohup bash -c "source $vf/env.sh; source tools/gpu/job.sh; nvidia-smi > $out/nvidia-smi.txt
     if [ $1 = rerun ]; then
       job rerun python3 -m vanilla_flash notebooks --target t4 --out $out/nb_rerun ${*:2} ${sets[*]@Q}
     else
       job notebooks python3 -m vanilla_flash notebooks --target t4 --out $out/nb ${sets[*]@Q}
       job second_session python3 -m vanilla_flash notebooks --target t4 --out $out/nb_second_session \
         notebooks/flash_attn_1/01_install.ipynb ${sets[*]@Q}
     fi
     python3 tools/gpu/t4_stand_in_report.py $out > $out/report.log 2>&1
     echo done >> $out/status" > $vf/launch.out 2>&1 < /dev/null &)
  echo started ;;
wait)
  end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; tail -3 $out/notebooks/log.txt 2>/dev/null ;;
collect)
  cp $out/t4_twin.json "$2/" 2>/dev/null
  tar czf "$2/t4-twin.tar.gz" --exclude='*.ckpt' --exclude='*.npy' --exclude='*.whl' -C $vf out \
    -C "$PWD" build/flash-attn-1/build.log build/flash-attn-1/build.json runs/notebooks 2>/dev/null
  ls -la "$2" ;;
esac
