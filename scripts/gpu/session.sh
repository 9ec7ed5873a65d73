#!/usr/bin/env bash
# Drive a GPU machine without network through calls of at most 10 minutes each: the work runs in a
# background process session that outlives each call, and later calls wait for it and collect.
#   session.sh start DIR              copy DIR/fa4a aside, start building flash-attn 1.0.9 (a wheel)
#   session.sh launch DIR JOBS        install flash-attn 4 (DIR/fa4a + DIR/fa4b) and datasets (DIR/ds),
#                                     then run the job file JOBS in the background
#   session.sh wait SECONDS           wait for the jobs (at most SECONDS), print their status
#   session.sh collect OUT            pack the results (logs, JSON, CSV, PNG; no checkpoints) into OUT
# DIR is what scripts/gpu/prepare_offline.sh made. Results go to /tmp/vf/out/<job>/.
set -uo pipefail
stage=$1; shift
vf=/tmp/vf; out=$vf/out
case $stage in
start)
  mkdir -p $vf && cp -r "$1/fa4a" $vf/ && cp "$1/fa1.tar.gz" $vf/
  (FA1_ARCHS=${FA1_ARCHS:-90} setsid nohup bash scripts/gpu/build_fa1.sh $vf/fa1.tar.gz $vf/fa1 \
     > $vf/fa1.out 2>&1 < /dev/null &)
  sleep 2; cat $vf/fa1.out ;;
launch)
  dir=$1 jobs=$2
  python3 -m pip install -q --no-index --no-deps --target $vf/ds "$dir"/ds/*.whl
  site=$(bash scripts/gpu/install_fa4.sh $vf/fa4 $vf/fa4a "$dir/fa4b" | tail -1)
  cat > $vf/env.sh <<ENV
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out
export PYTHONPATH=$PWD/scr:$vf/fa1/site:$site:$site/nvidia_cutlass_dsl/dsl_packages:$vf/ds
ENV
  mkdir -p $out && cp "$jobs" $vf/jobs.sh
  (setsid nohup bash -c "while [ ! -e $vf/fa1/done ]; do sleep 3; done
     ln -sfn $site/flash_attn/cute $vf/fa1/site/flash_attn/cute
     cp $vf/fa1/build.log $out/fa1_build.log; cat $vf/fa1/build_seconds > $out/fa1_build_seconds.txt
     source $vf/env.sh; cd $PWD; bash $vf/jobs.sh > $out/jobs.log 2>&1; echo done >> $out/status" \
     > $vf/launch.out 2>&1 < /dev/null &)
  echo launched ;;
wait)
  end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; tail -5 $out/jobs.log 2>/dev/null ;;
collect)
  tar czf "$1/results.tar.gz" --exclude='*.ckpt' --exclude='*.npy' -C $vf out
  ls -la "$1" ;;
esac
