#!/usr/bin/env bash
# `python -m vanilla_flash check` on a GPU machine without network, with flash-attn 1.0.9, 2.8.3 and 4
# installed, through calls of at most 10 minutes (the work runs in a background process session):
#   tools/gpu/check_gpu.sh stage DIR      copy DIR's files to /tmp/vc/in (one call per part when a
#                                         transfer is limited: fa1.tar.gz, fa2.tar.gz, the FA4 wheels, split)
#   tools/gpu/check_gpu.sh start          build flash-attn 1.0.9 (sm90, every head dim) and 2.8.3 (sm90,
#                                         head dim 64 only) at once, install flash-attn 4, then run the checks
#   tools/gpu/check_gpu.sh wait SECONDS   wait for them (at most SECONDS), print their status
#   tools/gpu/check_gpu.sh collect OUT    copy the results to OUT
# The checks, one after the other:
# 1. fa1: every backend, flash-attn 1.0.9 and 4 installed side by side (FA4's `flash_attn/cute` linked
#    into 1.x's package): kernels, GPT-2 124M, and transformers' GPT-2 on padded batches (left and right,
#    eager and torch.compile) against eager -> backends.json
# 2. fa2: flash_attn_2, flash_attn_4 and auto with flash-attn 2.8.3's package first on the path. Its wheel
#    carries an older `flash_attn/cute`, which fails to import with FA4's CuTe DSL (the AttributeError
#    seen on an H100): flash_attn_4 must be named unavailable and auto must take the next backend; the
#    head-dim-64 build must refuse the padded model's head dim 48 by name -> backends_fa2.json
set -uo pipefail
vc=/tmp/vc; in=$vc/in; out=$vc/out
case $1 in
stage)
  mkdir -p $in && cp -r "$2"/* $in/ && ls $in ;;
start)
  mkdir -p $out
  (FA1_ARCHS=90 setsid nohup bash tools/gpu/build_fa1.sh $in/fa1.tar.gz $vc/fa1 > $vc/fa1.out 2>&1 < /dev/null &)
  (PYTHONPATH=$PWD/scr setsid nohup python3 -m vanilla_flash build fa2 --archs 90 --head-dims 64 --source $in/fa2.tar.gz \
     --cache $vc/fa2wheels --work-dir $vc/fa2build --jobs 8 > $vc/fa2.out 2>&1 < /dev/null &)
  site=$(bash tools/gpu/install_fa4.sh $vc/fa4 $in | tail -1)
  dsl=$site:$site/nvidia_cutlass_dsl/dsl_packages
  cat > $vc/jobs.sh <<JOBS
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD/scr
nvidia-smi > $out/nvidia-smi.txt
while [ ! -e $vc/fa1/done ]; do sleep 3; done
cp $vc/fa1/build_seconds $out/fa1_build_seconds.txt
ln -sfn $site/flash_attn/cute $vc/fa1/site/flash_attn/cute
PYTHONPATH=$PWD/scr:$vc/fa1/site:$dsl python3 -m vanilla_flash check --out $out/backends.json > $out/backends.log 2>&1
echo "fa1 check exit \$?" >> $out/status
while ! ls $vc/fa2wheels/*/flash_attn-2.8.3*.whl > /dev/null 2>&1 && pgrep -f "vanilla_flash build fa2" > /dev/null; do sleep 3; done
python3 -m pip install -q --no-index --no-deps --target $vc/fa2site $vc/fa2wheels/*/flash_attn-2.8.3*.whl
PYTHONPATH=$PWD/scr:$vc/fa2site:$dsl python3 -m vanilla_flash check --backends flash_attn_2,flash_attn_4,auto \
  --out $out/backends_fa2.json > $out/backends_fa2.log 2>&1
echo "fa2 check exit \$?" >> $out/status
echo done >> $out/status
JOBS
  (setsid nohup bash $vc/jobs.sh > $vc/jobs.out 2>&1 < /dev/null &)
  echo started ;;
wait)
  end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2>/dev/null; do sleep 5; done
  cat $out/status 2>/dev/null; tail -3 $vc/fa1.out $vc/fa2.out $vc/jobs.out 2>/dev/null | cut -c1-200
  tail -3 $out/backends.log $out/backends_fa2.log 2>/dev/null ;;
collect)
  mkdir -p "$2" && cp $out/* "$2"/ && cp $vc/fa1.out "$2"/fa1_build.out && cp $vc/fa2.out "$2"/fa2_build.out
  ls -la "$2" ;;
esac
