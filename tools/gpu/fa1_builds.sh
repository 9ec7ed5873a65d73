#!/usr/bin/env bash
# flash-attn 1.0.9 built two ways on a GPU machine, timed, and the smaller build's limits checked:
#   tools/gpu/fa1_builds.sh OUT
# 1. just what GPT-2 needs for this GPU (head dim 64, no block-sparse kernels, sm90): installed, then
#    `check` (a head dim 128 row must be refused by name) and a direct head dim 128 call (it must stop
#    with the build's own message, not crash or fail to import);
# 2. as flash-attn ships it (every head dim and kernel, sm75 + sm80 + sm90).
# Writes OUT/fa1_builds.json, the check's JSON and the build logs.
set -uo pipefail
out=$1; b=/tmp/vf-fa1; mkdir -p $b
export PYTHONPATH=$PWD/scr PYTHONUNBUFFERED=1
build() {  # NAME ARCHS HEAD_DIMS(or all)
  python3 - "$@" <<'PY'
import json, sys
from vanilla_flash.builds import sources as builds
from vanilla_flash.builds import install
name, archs, dims = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
try:
    r = builds.build_fa1(f"/tmp/vf-fa1/{name}/wheels", source=".gpu/fa1.tar.gz", archs=archs,
                          head_dims=None if dims == "all" else [int(d) for d in dims.split(",")],
                          work_dir=f"/tmp/vf-fa1/{name}")
    print("WHEEL", r.wheel)
except Exception as e:
    print("FAILED", type(e).__name__, e)
PY
}
build minimal 90 64 | tee $b/minimal.out
wheel=$(grep ^WHEEL $b/minimal.out | cut -d' ' -f2)
python3 -m pip install -q --no-deps --target $b/site "$wheel"
export PYTHONPATH=$PYTHONPATH:$b/site
python3 -m vanilla_flash check --backends flash_attn_1,sdpa --out $out/check_fa1_hd64_sm90.json > $out/check.log 2>&1
python3 - > $out/head_dim_128_call.json <<'PY'
import json, torch
from flash_attn import flash_attn_interface as fa
q = torch.randn(2 * 256, 8, 128, device="cuda", dtype=torch.float16)
cu = torch.tensor([0, 256, 512], dtype=torch.int32, device="cuda")
try:
    fa.flash_attn_unpadded_func(q, q, q, cu, cu, 256, 256, 0.0, causal=True)
    result = {"raised": False}
except RuntimeError as err:
    result = {"raised": True, "type": type(err).__name__, "message": str(err).splitlines()[0][:400]}
q64 = torch.randn(2 * 256, 8, 64, device="cuda", dtype=torch.float16)
out = fa.flash_attn_unpadded_func(q64, q64, q64, cu, cu, 256, 256, 0.0, causal=True)
result["head_dim_64_after_it"] = bool(torch.isfinite(out).all())  # the process is still usable
print(json.dumps(result, indent=1))
PY
build shipped 75,80,90 all | tee $b/shipped.out
python3 - $out <<'PY'
import json, sys
from pathlib import Path
rows = []
for name, what in (("minimal", "head dim 64 only, no block-sparse kernels"), ("shipped", "as flash-attn ships it: every kernel")):
    facts = json.loads((Path("/tmp/vf-fa1") / name / "build.json").read_text()) if (Path("/tmp/vf-fa1") / name / "build.json").exists() else {"ok": False}
    rows.append({"build": name, "what": what, **facts})
Path(sys.argv[1], "fa1_builds.json").write_text(json.dumps(rows, indent=1) + "\n")
print(json.dumps(rows, indent=1))
PY
for n in minimal shipped; do sed "s#/tmp/#\$TMPDIR/#g; s#$PWD/##g" $b/$n/build.log | gzip > $out/fa1_build_$n.log.gz; done
cat $out/head_dim_128_call.json; tail -8 $out/check.log
