"""What separates the speed run's plain-PyTorch GPT-2 (`plain_gpt.plain_pytorch_loop`, 508.2k tokens/s at batch
128 without clipping on an H100, results/h100/speed.json) from a nanoGPT-like one written outside the project
(543.7k there, in another run): the same loop with one thing written otherwise at a time (`plain_gpt.Style`),
then all of them together, then the weights in bfloat16 (another training: a diagnostic), then the step's
launches replayed as CUDA graphs (torch.compile's "reduce-overhead": whether the GPU waits on the CPU), in one
process at batch 64 without clipping, the baseline again at the end to show the drift; each with the kernels
its step's time goes to (two steps under the profiler after the timed ones). Into OUT.json:

    python experiments/speed/plain_probe.py OUT.json
"""

import sys

import torch
from vanilla_flash.results import provenance

from experiments.speed.plain_gpt import NANOGPT_STYLE, Style, plain_pytorch_loop

CUDNN, GRAPHS = "CUDNN_ATTENTION", "reduce-overhead"
VARIANTS = [  # (name, SDPA kernel, how the model is written, torch.compile's mode)
    ("as in the speed run", CUDNN, Style(), "default"),
    ("no biases (nanoGPT's training default)", CUDNN, Style(bias=False), "default"),
    ("exact GELU", CUDNN, Style(gelu="exact"), "default"),
    ("logits left to autocast, no explicit float()", CUDNN, Style(float_logits=False), "default"),
    ("PyTorch's own SDPA kernel choice", None, Style(), "default"),
    ("all four as nanoGPT has them", None, NANOGPT_STYLE, "default"),
    ("weights held in bfloat16 (pure bf16 training, not mixed precision)", CUDNN, Style(weights="bfloat16"), "default"),
    ("launches replayed as CUDA graphs (compile mode reduce-overhead)", CUDNN, Style(), GRAPHS),
    ("as in the speed run, again", CUDNN, Style(), "default"),
]
result = {"kind": "plain_probe", **provenance.provenance(), "batch": 64, "grad_clip": False, "rows": []}
for name, kernel, style, mode in VARIANTS:
    torch._dynamo.reset()
    row = {"variant": name, "kernel": kernel, "compile_mode": mode, **vars(style)}
    timed = dict(steps=15, warmup=6, profile_steps=2)
    row.update(plain_pytorch_loop(64, clip=False, kernel=kernel, compile_mode=mode, style=style, **timed))
    print(f"{name}: {row['tokens_per_s'] / 1e3:.1f}k tok/s, {row['gpu_ms_per_step']} ms per step profiled", flush=True)
    result["rows"].append(row)
    provenance.write_json(sys.argv[1], result)  # after each variant: a run cut short keeps what it measured
