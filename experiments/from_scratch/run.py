"""The from-scratch CUDA kernel (vanilla_flash.teach.from_scratch) on a GPU, built two ways, into OUT.json:
    python3 experiments/from_scratch/run.py OUT.json [LIBRARY ...]
1. machine code for this GPU (sm90 on an H200); 2. compute_75 PTX alone, which the driver compiles
when the module loads (the Turing build, run here). For each build and shape (GPT-2's B16 x H12 x
1024 x 64 causal, and B4 x H16 x 4096 x 128 causal): the relative error against an fp32 reference,
against each attention backend in LIBRARY (default: sdpa_flash, sdpa_cudnn; flash_attn_2 where it is
installed), and the times of the kernel, of naive PyTorch attention and of each library backend.
"""

import json
import sys
import tempfile
import time

import torch
from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.results import provenance
from vanilla_flash.teach import from_scratch as fs

libraries = sys.argv[2:] or ["sdpa_flash", "sdpa_cudnn", "flash_attn_2"]
machine = env.probe()
rows = []
for arch in (f"{machine.capability[0]}{machine.capability[1]}", "compute_75"):
    start = time.perf_counter()
    module = fs.build_kernel(arch, build_dir=tempfile.mkdtemp())
    built_s = round(time.perf_counter() - start, 1)
    for batch, heads, seq, head_dim in ((16, 12, 1024, 64), (4, 16, 4096, 128)):
        runnable = [
            name for name in libraries
            if not attention.why_not(name, machine, dtype=torch.float16, head_dim=head_dim, training=False)
        ]  # fmt: skip
        row = fs.compare_on_gpu(module, runnable, batch=batch, heads=heads, seq=seq, head_dim=head_dim)
        rows.append({"built_for": arch, "build_seconds": built_s, **row})
        print(json.dumps(rows[-1]), flush=True)
result = {"kind": "from_scratch_kernel", **provenance.provenance(), "rows": rows}
provenance.write_json(sys.argv[1], result)
