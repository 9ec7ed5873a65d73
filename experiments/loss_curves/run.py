"""Does the vanilla model learn as transformers' GPT-2 does, within the noise of one GPU? Into OUT.json:
    python3 experiments/loss_curves/run.py OUT.json [--steps 50] [--max-steps STEPS] [--seeds FIRST:COUNT]
        [--hf-runs 2] [--configs "NAME;NAME;..."]
the speed experiment found the vanilla model with `residual: bf16` ending its 50 steps 0.06-0.085 below
transformers' GPT-2 in every run, with a float32 residual within 0.01; one seed, so it could not say
whether that is this seed's luck, nor how far transformers' GPT-2 strays from itself. This trains, in
the bare loop (`bench.training.bare_loop`: the same module, optimizer, schedule and data as the
Lightning run), GPT-2 124M at batch 128 for `--steps` steps with the loss read every step, the learning
rate decaying to its floor at `--max-steps` (default: the steps, as in the speed experiment), for
`--seeds` seeds (default: the config's seed, 3; a seed sets the initial weights and the data's split and
order): transformers' GPT-2 `--hf-runs` times per seed (1 or 2: the run-to-run noise of one GPU), then
each of `--configs` (`CONFIGS`; default: the vanilla model with a bf16 and with a float32 residual
stream; the float8 rows are the speed experiment's best with its blocks' matmuls in float8, the bf16-weights
row the same in pure bf16 training, precision bf16-true). `summary`
gives, per configuration, each run's loss minus that of the reference's first run of the same seed
(`loss_curves.loss_against_reference`: transformers' GPT-2, or the first configuration where it did not
fit), averaged over the last 10 steps and, in absolute value, over all. Each
run is written as soon as it ends. On a machine without a GPU it runs a tiny model a few steps, to
check the script itself (float8 emulated).
"""

import argparse
import dataclasses
import json
import time

import torch
from vanilla_flash.bench import timing
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.results import provenance
from vanilla_flash.training import datamodule

from experiments.loss_curves import tables as loss_curves

gpu = torch.cuda.is_available()
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("out")
parser.add_argument("--steps", type=int, default=50 if gpu else 3)
parser.add_argument("--max-steps", type=int, default=None, help="where the learning rate reaches its floor")
parser.add_argument("--seeds", default=None, help="FIRST:COUNT (default: the config's seed, 3 seeds)")
parser.add_argument("--hf-runs", type=int, choices=(1, 2), default=2, help="transformers' GPT-2 runs per seed")
parser.add_argument("--configs", default="vanilla, bf16 residual;vanilla, float32 residual",
                    help="the configurations after transformers' GPT-2, `;`-separated names of CONFIGS")  # fmt: skip
args = parser.parse_args()
steps = args.steps
max_steps = args.max_steps or steps
tail = min(10, steps)
result = {"kind": "loss_curves", **provenance.provenance(), "steps": steps, "max_steps": max_steps,
          "tail_steps": tail, "runs": [], "summary": {}}  # fmt: skip


def save() -> None:
    provenance.write_json(args.out, result)


if gpu:
    base = TrainConfig.from_yaml("configs/h200-speed.yaml", batch_size=128, log_every=1, max_steps=max_steps,
                                 run_dir="runs/loss-curves")  # fmt: skip
    fast_loss = "chunked_triton"
else:
    base = TrainConfig.from_yaml("configs/h200-speed.yaml", model_size="tiny", seq_len=64, batch_size=4, compile=False,
                                 attn="sdpa", log_every=1, max_steps=max_steps, run_dir="runs/loss-curves")  # fmt: skip
    fast_loss = "chunked"
first, count = map(int, args.seeds.split(":")) if args.seeds else (base.seed, 3)
seeds = tuple(range(first, first + count))
vanilla = {"model_impl": "vanilla", "loss": fast_loss}
CONFIGS = {  # name: overrides
    "vanilla, bf16 residual": {**vanilla, "residual": "bf16"},
    "vanilla, float32 residual": {**vanilla, "residual": "float32"},
    "vanilla, bf16 residual, float8 tensorwise": {**vanilla, "residual": "bf16", "float8": "tensorwise"},
    "vanilla, bf16 residual, float8 rowwise": {**vanilla, "residual": "bf16", "float8": "rowwise"},
    "vanilla, bf16 residual, bf16 weights": {**vanilla, "residual": "bf16", "precision": "bf16-true"},
}
unknown = [name for name in args.configs.split(";") if name not in CONFIGS]
if unknown:
    parser.error(f"--configs: {unknown} not among: {'; '.join(CONFIGS)}")
RUNS = (  # name, overrides, seeds
    ("hf", {"model_impl": "hf", "loss": "full"}, seeds * args.hf_runs),
    *((name, CONFIGS[name], seeds) for name in args.configs.split(";")),
)


def summarise() -> None:
    if not any(run.get("loss_curve") for run in result["runs"]):
        return
    result["summary"] = {"reference": loss_curves.reference_config([result])} | {
        config: {"tail_minus_reference": [round(loss_curves.tail_mean(c, tail), 4) for c in by_seed.values()],
                 "mean_abs_diff": [round(sum(abs(d) for _, d in c) / len(c), 4) for c in by_seed.values()]}
        for config, by_seed in loss_curves.loss_against_reference([result]).items()
    }  # fmt: skip


for name, overrides, run_seeds in RUNS:
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
