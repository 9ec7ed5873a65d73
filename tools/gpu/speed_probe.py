"""A first look at GPT-2 124M training speed per model implementation (seq 1024, batch 32, bf16,
torch.compile, cuDNN attention, dropout 0) in the bare loop, one JSON line per configuration as it
finishes, into OUT.jsonl; not the issue's benchmark (no Lightning rows, no matmul reference):
    python3 tools/gpu/speed_probe.py OUT.jsonl
"""

import json
import sys

from vanilla_flash.bench_training import bare_loop
from vanilla_flash.config import TrainConfig

for impl, loss in (("vanilla", "chunked"), ("hf", "full"), ("vanilla", "full")):
    cfg = TrainConfig(model_size="124M", seq_len=1024, batch_size=32, attn="sdpa_cudnn", compile=True,
                      precision="bf16-mixed", model_impl=impl, loss=loss, max_steps=1000, warmup_steps=2)  # fmt: skip
    row = {"model_impl": impl, "loss": loss, "batch": 32, "seq": 1024, "attn": "sdpa_cudnn", **bare_loop(cfg, 10, 6)}
    print(json.dumps(row), flush=True)
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps(row) + "\n")
