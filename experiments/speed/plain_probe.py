"""What separates the speed run's plain-PyTorch GPT-2 (`plain_gpt.plain_pytorch_loop`, 508.2k tokens/s at batch
128 without clipping on an H100, results/h100/speed.json) from a nanoGPT-like one written outside the project
(543.7k there, another run): the same loop with one thing changed at a time, alternating, in one process, at
batch 64 without clipping. Into OUT.json:

    python experiments/speed/plain_probe.py OUT.json [ROUNDS]

- as in the speed run: the run's cuDNN kernel, float32 cross-entropy on the logits, biases;
- no biases in the Linear and LayerNorm layers (nanoGPT trains without them by default; GPT-2 has them);
- PyTorch's own SDPA kernel choice instead of naming cuDNN's.
"""

import json
import sys

import torch

from experiments.speed.plain_gpt import plain_pytorch_loop

VARIANTS = {
    "as in the speed run": {},
    "no biases": {"bias": False},
    "PyTorch's kernel choice": {"kernel": None},
}
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
rows = []
for round_ in range(rounds):
    for name, change in VARIANTS.items():
        torch._dynamo.reset()
        settings = {"kernel": "CUDNN_ATTENTION", **change}
        row = {"variant": name, "round": round_, **settings}
        row.update(plain_pytorch_loop(64, clip=False, steps=15, warmup=6, **settings))
        print(row, flush=True)
        rows.append(row)
        with open(sys.argv[1], "w") as f:
            json.dump({"card": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                       "torch": torch.__version__, "batch": 64, "rows": rows}, f, indent=1)  # fmt: skip
