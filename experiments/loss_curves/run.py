"""Does the vanilla model learn as transformers' GPT-2 does, within the noise of one GPU? Into OUT.json:
    python3 experiments/loss_curves/run.py OUT.json [STEPS [MAX_STEPS [FIRST_SEED:SEEDS [HF_RUNS]]]]
the speed experiment found the vanilla model with `residual: bf16` ending its 50 steps 0.06-0.085 below
transformers' GPT-2 in every run, with a float32 residual within 0.01; one seed, so it could not say
whether that is this seed's luck, nor how far transformers' GPT-2 strays from itself. This trains, in
the bare loop (`bench.training.bare_loop`: the same module, optimizer, schedule and data as the
Lightning run), GPT-2 124M at batch 128 for STEPS steps (default 50) with the loss read every step,
the learning rate decaying to its floor at MAX_STEPS (default STEPS, as in the speed experiment), for SEEDS
seeds from FIRST_SEED (default: the config's seed, 3; a seed sets the initial weights and the data's
split and order): transformers' GPT-2 HF_RUNS times per seed (1 or 2, default 2: the run-to-run noise
of one GPU), the vanilla model with a bf16 residual stream (the speed experiment's best) and with a
float32 one. `summary` gives, per configuration, each run's loss minus that of transformers' first run of the
same seed (`loss_curves.loss_against_hf`), averaged over the last 10 steps and, in absolute value, over all.
Each run is written as soon as it ends. On a machine without a GPU it runs a tiny model a few steps,
to check the script itself.
"""

import dataclasses
import json
import sys
import time

import torch
from vanilla_flash.bench import timing
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.results import provenance
from vanilla_flash.training import datamodule

from experiments.loss_curves import tables as loss_curves

out_path = sys.argv[1]
gpu = torch.cuda.is_available()
steps = int(sys.argv[2]) if len(sys.argv) > 2 else (50 if gpu else 3)
max_steps = int(sys.argv[3]) if len(sys.argv) > 3 else steps
tail = min(10, steps)
result = {"kind": "loss_curves", **provenance.provenance(), "steps": steps, "max_steps": max_steps,
          "tail_steps": tail, "runs": []}  # fmt: skip


def save() -> None:
    provenance.write_json(out_path, result)


if gpu:
    base = TrainConfig.from_yaml("configs/h200-speed.yaml", batch_size=128, log_every=1, max_steps=max_steps,
                                 run_dir="runs/loss-curves")  # fmt: skip
    fast_loss = "chunked_triton"
else:
    base = TrainConfig.from_yaml("configs/h200-speed.yaml", model_size="tiny", seq_len=64, batch_size=4, compile=False,
                                 attn="sdpa", log_every=1, max_steps=max_steps, run_dir="runs/loss-curves")  # fmt: skip
    fast_loss = "chunked"
first, count = map(int, sys.argv[4].split(":")) if len(sys.argv) > 4 else (base.seed, 3)
seeds = tuple(range(first, first + count))
hf_runs = int(sys.argv[5]) if len(sys.argv) > 5 else 2
if hf_runs not in (1, 2):
    raise SystemExit("HF_RUNS is 1 or 2: the summary compares transformers' second run of a seed with its first")
vanilla = {"model_impl": "vanilla", "loss": fast_loss}
CONFIGS = (  # name, overrides, seeds
    ("hf", {"model_impl": "hf", "loss": "full"}, seeds * hf_runs),
    ("vanilla, bf16 residual", {**vanilla, "residual": "bf16"}, seeds),
    ("vanilla, float32 residual", {**vanilla, "residual": "float32"}, seeds),
)


def summarise() -> None:
    result["summary"] = {
        config: {"tail_minus_hf": [round(loss_curves.tail_mean(c, tail), 4) for c in by_seed.values()],
                 "mean_abs_diff_vs_hf": [round(sum(abs(d) for _, d in c) / len(c), 4) for c in by_seed.values()]}
        for config, by_seed in loss_curves.loss_against_hf([result]).items()
    }  # fmt: skip


for name, overrides, run_seeds in CONFIGS:
    torch._dynamo.reset()  # each configuration compiled afresh; its seeds share the compiled code
    for seed in run_seeds:
        cfg = dataclasses.replace(base, **overrides, seed=seed)
        run = {"config": name, "seed": seed, **overrides, "status": "ok"}
        begin = time.perf_counter()
        try:
            data = datamodule.WikisourceData(cfg)
            data.setup("fit")
            row = bench_training.bare_loop(cfg, steps=steps, warmup=0,
                                           data_loader=data.train_dataloader())  # fmt: skip
            curve = row["loss_curve"]
            run.update(loss_curve=curve, tail_mean=round(loss_curves.tail_mean(curve, tail), 4))
        except Exception as err:
            run["status"] = timing.failure_status(err)
        run["seconds"] = round(time.perf_counter() - begin, 1)
        timing.free_memory()
        result["runs"].append(run)
        summarise()
        save()
        print(json.dumps({k: v for k, v in run.items() if k != "loss_curve"}), flush=True)
print(json.dumps(result["summary"], indent=1), flush=True)
