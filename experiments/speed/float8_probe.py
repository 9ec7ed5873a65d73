"""A first look at float8 on this GPU, before the speed run: the speed run's best (the vanilla model, the
chunked loss with its Triton kernel, a bf16 residual stream; configs/h200-speed.yaml) at batch 64 in the bare
loop (`bench.training.bare_loop`, random tokens, 6 steps of warm-up and 12 timed), with its blocks' matmuls in
bf16 and in float8 by each of torchao's recipes, one after the other in one process. Into OUT.json:

    python experiments/speed/float8_probe.py OUT.json
"""

import dataclasses
import json
import sys
import time

import torch
from vanilla_flash.bench import timing
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig

base = TrainConfig.from_yaml("configs/h200-speed.yaml", model_impl="vanilla", loss="chunked_triton", residual="bf16",
                             batch_size=64)  # fmt: skip
rows = []
for recipe in (None, "tensorwise", "rowwise"):
    torch._dynamo.reset()
    begin = time.time()
    try:
        run = bench_training.bare_loop(dataclasses.replace(base, float8=recipe), steps=12, warmup=6)
        row = {"float8": recipe, "tokens_per_s": run["tokens_per_s"], "peak": run.get("peak_mem_gib"),
               "s": round(time.time() - begin)}  # fmt: skip
    except Exception as err:
        row = {"float8": recipe, "error": repr(err)[:400]}
    print(row, flush=True)
    rows.append(row)
    timing.free_memory()
with open(sys.argv[1], "w") as f:
    json.dump(rows, f, indent=1)
