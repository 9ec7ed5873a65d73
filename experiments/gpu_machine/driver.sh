#!/usr/bin/env bash
# The one driver of a GPU machine without network, through calls of at most 10 minutes each: the work
# runs in a background process session that outlives each call; later calls wait for it and collect.
# Run from the repository root on the GPU machine.
#
#   driver.sh stage DIR            copy what DIR holds (what prepare_offline.sh made: fa1.tar.gz, fa2.tar.gz,
#                                  fa4a/, fa4b/ (fa4c/ ...: flash-attn 4's wheels and parts, as many folders as
#                                  the transfers need), ds/, nb/, fa1wheels/; pack_site.sh's packN/: the same
#                                  installed and xz'd, fewer transfers; any part of it) to $VF/in; where a
#                                  transfer is limited, one call per part. A file `commit` there is the
#                                  commit the results are stamped with (the copy has no git metadata).
#   driver.sh start JOBS [NAME...] in the background: install what is staged (datasets and papermill,
#                                  flash-attn 4; flash-attn 1.0.9 from a staged wheel, or built from
#                                  fa1.tar.gz for $FA1_ARCHS (and $FA1_HEAD_DIMS) when set, in the background:
#                                  a job that needs it calls `needs_fa1` first), and run the experiment's
#                                  job file JOBS (e.g. experiments/speed/jobs.sh; several, comma-separated,
#                                  one after the other): all their jobs, or those named
#   driver.sh wait SECONDS         wait for the jobs (at most SECONDS), print their status lines
#   driver.sh collect OUT          copy each job's files and log (machine paths scrubbed), the status and
#                                  nvidia-smi to OUT; a flash-attn 1.0.9 wheel built here to OUT/fa1wheel/
#                                  in parts under 16 MiB (join: cat whl.part?? > NAME.whl)
#
# A job file is a list of `job NAME COMMAND...` lines, run in order from the repository root with:
#   OUT_DIR  where the job writes (its log goes to $OUT_DIR/NAME/log.txt)
#   IN       the staged files ($IN/fa1.tar.gz, $IN/fa2.tar.gz)
#   VF       this driver's folder for what it builds ($VF/fa1/site: flash-attn 1.0.9, $VF/fa1/wheels)
# Each status line: "NAME <exit status> <seconds>s matmul <TFLOP/s before>/<after>": a bf16 8192^3 matmul
# before and after each job tells a healthy GPU (about 760 TFLOP/s on an H100) from a slowed or shared one.
set -uo pipefail
VF=${VF:-/tmp/vanilla-flash}
in=$VF/in out=$VF/out repo=$PWD

matmul_tflops() {
  python3 -c "
import time, torch
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(5): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): a @ b
torch.cuda.synchronize(); print(round(2 * 8192**3 * 20 / (time.perf_counter() - t) / 1e12))" 2>/dev/null
}

job() {  # NAME COMMAND...: skipped unless named in $ONLY (when set)
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  mkdir -p "$OUT_DIR/$name"
  local before start status
  before=$(matmul_tflops) start=$(date +%s)
  ("$@") > "$OUT_DIR/$name/log.txt" 2>&1
  status=$?
  echo "$name $status $(($(date +%s) - start))s matmul $before/$(matmul_tflops)" >> "$OUT_DIR/status"
}

needs_fa1() {  # in a job file: wait until flash-attn 1.0.9 is installed (it builds while the first jobs run)
  while [ ! -e "$VF/fa1/done" ]; do sleep 3; done
}

setup() {  # install what is staged; prints the PYTHONPATH of it
  local path=$repo/scr
  for part in ds nb; do
    if ls $in/$part/*.whl > /dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --target $VF/site $in/$part/*.whl >&2
      path+=:$VF/site
    fi
  done
  if ls $in/site.tar.xz.part* > /dev/null 2>&1; then  # pack_site.sh's site: datasets and flash-attn 4, installed
    cat $in/site.tar.xz.part* > $VF/site.tar.xz && (cd $VF && md5sum -c --quiet $in/site.md5) >&2
    mkdir -p $VF/site && python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
      $VF/site.tar.xz $VF/site && rm $VF/site.tar.xz
    path+=:$VF/site:$VF/site/nvidia_cutlass_dsl/dsl_packages
    echo $VF/site > $VF/fa4_site
  elif [ -d $in/fa4a ]; then
    local site
    site=$(bash experiments/gpu_machine/install_fa4.sh $VF/fa4 $in/fa4? | tail -1)
    path+=:$site:$site/nvidia_cutlass_dsl/dsl_packages
    echo "$site" > $VF/fa4_site
  fi
  echo "$path:$VF/fa1/site"
}

fa1() {  # flash-attn 1.0.9 into $VF/fa1/site: a staged wheel, or a build for $FA1_ARCHS; $VF/fa1/done at the end
  mkdir -p $VF/fa1 && rm -f $VF/fa1/done
  local start status
  start=$(date +%s)
  if ls $in/fa1wheels/*/flash_attn-*.whl > /dev/null 2>&1; then
    cp -r $in/fa1wheels $VF/fa1/wheels && echo "a wheel built in an earlier session" > $VF/fa1/build.log
    python3 -m pip install -q --no-index --no-deps --target $VF/fa1/site $VF/fa1/wheels/*/flash_attn-*.whl
    status=$?
    echo 0 > $VF/fa1/build_seconds
  else
    PYTHONPATH=$repo/scr python3 -m vanilla_flash build fa1 --archs "$FA1_ARCHS" --source $in/fa1.tar.gz \
      ${FA1_HEAD_DIMS:+--head-dims "$FA1_HEAD_DIMS"} --cache $VF/fa1/wheels --work-dir $VF/fa1 > $VF/fa1/build.out 2>&1 &&
      python3 -m pip install -q --no-index --no-deps --target $VF/fa1/site $VF/fa1/wheels/*/flash_attn-*.whl
    status=$?
    echo $(($(date +%s) - start)) > $VF/fa1/build_seconds
  fi
  if [ -e $VF/fa4_site ] && [ -d $VF/fa1/site/flash_attn ]; then  # 1.x's flash_attn package would hide 4's
    ln -sfn "$(cat $VF/fa4_site)/flash_attn/cute" $VF/fa1/site/flash_attn/cute
  fi
  echo $status > $VF/fa1/done
}

case ${1:-} in
stage)
  mkdir -p $in && cp -r "$2"/* $in/ && ls $in ;;
start)
  jobs=$2; shift 2
  mkdir -p $out && rm -f $out/status
  path=$(setup)
  cat > $VF/env.sh << ENV
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OUT_DIR=$out IN=$in VF=$VF
export PYTHONPATH=$repo:$path VANILLA_FLASH_COMMIT=$(cat $in/commit 2> /dev/null) ONLY="$*"
ENV
  # shellcheck disable=SC2016
  (setsid nohup bash -c "source $VF/env.sh; source $0 functions
     if [ -e $in/fa1wheels ] || [ -n '${FA1_ARCHS:-}' ]; then
       FA1_ARCHS='${FA1_ARCHS:-}' FA1_HEAD_DIMS='${FA1_HEAD_DIMS:-}' fa1 &
     else
       mkdir -p $VF/fa1 && echo none > $VF/fa1/done
     fi
     nvidia-smi > $out/nvidia-smi.txt
     for file in ${jobs//,/ }; do source \$file; done
     echo done >> $out/status" > $VF/launch.out 2>&1 < /dev/null &)
  echo "started $jobs ${*:-(every job)}" ;;
functions) ;;  # sourced by the background session for job(), fa1(), needs_fa1()
wait)
  end=$(($(date +%s) + $2))
  while [ "$(date +%s)" -lt $end ] && ! grep -q '^done' $out/status 2> /dev/null; do sleep 5; done
  cat $out/status 2> /dev/null
  tail -3 $VF/launch.out $VF/fa1/build.out 2> /dev/null | cut -c1-200
  true ;;
collect)
  mkdir -p "$2"
  (cd $out && find . -type f ! -name '*.ckpt' ! -name '*.npy' ! -name '*.whl' ! -name log.txt \
    -exec cp --parents {} "$2"/ \;)
  for log in $out/*/log.txt; do
    [ -e "$log" ] || continue
    name=$(basename "$(dirname "$log")")
    mkdir -p "$2/$name" && sed "s#/tmp/#\$TMPDIR/#g; s#$repo/##g" "$log" > "$2/$name/log.txt"
  done
  if [ -e $VF/fa1/build_seconds ] && [ "$(cat $VF/fa1/build_seconds)" != 0 ]; then
    sed "s#/tmp/#\$TMPDIR/#g; s#$repo/##g" $VF/fa1/build.log > "$2/fa1_build.log" 2> /dev/null
    cp $VF/fa1/build_seconds "$2/fa1_build_seconds.txt"
    wheel=$(ls $VF/fa1/wheels/*/flash_attn-*.whl 2> /dev/null | head -1)
    if [ -n "$wheel" ]; then
      mkdir -p "$2/fa1wheel" && basename "$(dirname "$wheel")" > "$2/fa1wheel/tag.txt"
      basename "$wheel" > "$2/fa1wheel/name.txt" && md5sum "$wheel" | cut -d' ' -f1 > "$2/fa1wheel/md5.txt"
      split -b 15M "$wheel" "$2/fa1wheel/whl.part"
    fi
  fi
  ls -R "$2" | head -50 ;;
*)
  sed -n '2,24p' "$0" | cut -c3-
  exit 2 ;;
esac
