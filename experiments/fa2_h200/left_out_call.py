"""A call that a flash-attn 2 build of head dim 64 only has no kernels for (head dim 128) must stop
with the build's own message, not crash or fail to import, and leave the process usable; a call that
needs a feature the build left out must be refused:
    python3 experiments/fa2_h200/left_out_call.py OUT.json
"""

import json
import sys
from pathlib import Path

import flash_attn
import torch
from flash_attn import flash_attn_func

result = {"flash_attn": flash_attn.__version__, "library": flash_attn.__file__.rsplit("/", 3)[-3]}
q = torch.randn(2, 256, 8, 128, device="cuda", dtype=torch.bfloat16)
try:
    flash_attn_func(q, q, q, causal=True)
    result["raised"] = False
except RuntimeError as err:
    result |= {"raised": True, "type": type(err).__name__, "message": str(err).splitlines()[0][:400]}
# the features the build leaves out (builds.FA2_LEFT_OUT) must be refused by flash-attn's own checks,
# not run without the feature (a wrong result)
slopes = torch.rand(8, device="cuda", dtype=torch.float32)
for feature, dim, kwargs in (("sliding window", 64, {"window_size": (128, 0)}), ("soft-capping", 64, {"softcap": 30.0}),
                             ("ALiBi", 64, {"alibi_slopes": slopes}), ("head dim 48 (uneven K)", 48, {})):  # fmt: skip
    x = torch.randn(2, 256, 8, dim, device="cuda", dtype=torch.bfloat16)
    try:
        flash_attn_func(x, x, x, causal=True, **kwargs)
        result[feature] = "ran"
    except RuntimeError as err:
        result[feature] = str(err).splitlines()[0][:200]
q64 = torch.randn(2, 256, 8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
out = flash_attn_func(q64, q64, q64, causal=True)
out.sum().backward()
result["head_dim_64_after_it"] = bool(torch.isfinite(out).all() and torch.isfinite(q64.grad).all())
print(json.dumps(result, indent=1))
Path(sys.argv[1]).write_text(json.dumps(result, indent=1) + "\n")
