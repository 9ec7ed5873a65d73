#!/usr/bin/env bash
# Drive a GPU machine without network through calls of at most 10 minutes each: the work runs in a
# background process session that outlives each call, and later calls wait for it and collect.
#   session.sh stage DIR              copy what DIR holds (fa4a, fa4b, ds, nb, fa1wheels, fa1.tar.gz) to
#                                     /tmp/vf/in: when a transfer is limited, each call brings a part
#   session.sh start                  flash-attn 1.0.9: install the staged wheel (fa1wheels, one collected
#                                     earlier) or build one from fa1.tar.gz in the background (~3 min)
#   session.sh launch JOBS...         install flash-attn 4 (fa4a + fa4b), datasets (ds) and papermill (nb,
#                                     if staged), then run the job files JOBS in order, in the background
#   session.sh wait SECONDS           wait for the jobs (at most SECONDS), print their status
#   session.sh collect OUT            pack the results (logs, JSON, CSV, PNG, notebooks; no checkpoints)
#                                     into OUT/results.tar.gz; a wheel built here goes to OUT/fa1wheel/
#                                     in parts under 16 MiB (join: cat fa1wheel/*.part?? > TAG/NAME.whl)
# DIR is what tools/gpu/prepare_offline.sh made. Results go to /tmp/vf/out/<job>/.
set -uo pipefail
stage=$1; shift
vf=/tmp/vf; in=$vf/in; out=$vf/out
case $stage in
stage)
  mkdir -p $in
  for part in fa4a fa4b ds nb fa1wheels fa1.tar.gz; do
    if [ -e "$1/$part" ]; then cp -r "$1/$part" $in/ && echo "staged $part"; fi
  done ;;
start)
  mkdir -p $vf/fa1
  if ls $in/fa1wheels/*/flash_attn-*.whl > /dev/null 2>&1; then  # built in an earlier session: no rebuild
    cp -r $in/fa1wheels $vf/fa1/wheels && echo "wheel from an earlier build, not built here" > $vf/fa1/build.log
    python3 -m pip install -q --no-index --no-deps --target $vf/fa1/site $vf/fa1/wheels/*/flash_attn-*.whl
    status=$?; echo 0 > $vf/fa1/build_seconds; echo $status > $vf/fa1/done
    echo "flash-attn 1.0.9 installed from a wheel (exit $status)"
  else
    (FA1_ARCHS=${FA1_ARCHS:-90} setsid nohup bash tools/gpu/build_fa1.sh $in/fa1.tar.gz $vf/fa1 \
       > $vf/fa1.out 2>&1 < /dev/null &)
    sleep 2; cat $vf/fa1.out
  fi ;;
launch)
  python3 -m pip install -q --no-index --no-deps --target $vf/ds $in/ds/*.whl
  [ -d $in/nb ] && python3 -m pip install -q --no-index --no-deps --target $vf/nb $in/nb/*.whl
  site=$(bash tools/gpu/install_fa4.sh $vf/fa4 $in/fa4a $in/fa4b | tail -1)
  cat > $vf/env.sh <<ENV
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out VF=$vf
export PYTHONPATH=$PWD/scr:$vf/fa1/site:$site:$site/nvidia_cutlass_dsl/dsl_packages:$vf/ds:$vf/nb
ENV
  mkdir -p $out && cat "$@" > $vf/jobs.sh
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
  tar czf "$1/results.tar.gz" --exclude='*.ckpt' --exclude='*.npy' --exclude='*.whl' -C $vf out
  if [ "$(cat $vf/fa1/build_seconds 2>/dev/null)" != 0 ]; then
    mkdir -p "$1/fa1wheel" && ls $vf/fa1/wheels > "$1/fa1wheel/tag.txt"
    wheel=$(ls $vf/fa1/wheels/*/flash_attn-*.whl) && basename "$wheel" > "$1/fa1wheel/name.txt"
    md5sum "$wheel" | cut -d' ' -f1 > "$1/fa1wheel/md5.txt" && split -b 15M "$wheel" "$1/fa1wheel/whl.part"
  fi
  ls -la "$1" ;;
esac
