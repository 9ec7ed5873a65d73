"""A flash-attn 1.x call the head-dim-64 build has no kernel for: it must stop with the build's own
message, and the process must stay usable (a head dim 64 call after it):

    python experiments/fa1_builds/head_dim_128_call.py OUT.json
"""

import sys

import torch
from flash_attn import flash_attn_interface as fa
from vanilla_flash.results import provenance

q = torch.randn(2 * 256, 8, 128, device="cuda", dtype=torch.float16)
cu = torch.tensor([0, 256, 512], dtype=torch.int32, device="cuda")
try:
    fa.flash_attn_unpadded_func(q, q, q, cu, cu, 256, 256, 0.0, causal=True)
    result = {"raised": False}
except RuntimeError as err:
    result = {"raised": True, "type": type(err).__name__, "message": str(err).splitlines()[0][:400]}
q64 = torch.randn(2 * 256, 8, 64, device="cuda", dtype=torch.float16)
out = fa.flash_attn_unpadded_func(q64, q64, q64, cu, cu, 256, 256, 0.0, causal=True)
result["head_dim_64_after_it"] = bool(torch.isfinite(out).all())
print(provenance.write_json(sys.argv[1], result))
