"""GPT-2 trained through the kernel ladder's kernels (part 2), into OUT.json:

    python experiments/kernel_ladder/train.py OUT.json [--steps 100] [--seeds 3] [--backends sdpa,sdpa,...] [--t4]

GPT-2 124M on the T4 set's terms (`notebooks/params/t4.yaml`'s `train` section: fp16, sequence 512, the
sample; no torch.compile; its warm-up scaled to the steps), in the bare loop (`bench.training.bare_loop`: the
Lightning run's module, optimizer, schedule and data), the loss read every step, for each seed from the same
weights and data: sdpa twice (the noise of one GPU), `from_scratch` (the ladder's last forward and backward
rungs), and, for speed beside them, flash_attn_1 and sdpa_efficient (the T4 set's choices). With `--t4`, the
GPU's memory is capped at a T4's 15 GiB and `from_scratch` is built as `compute_75` PTX. `summary`: per
backend, each run's loss minus sdpa's first run of its seed over the last 10 steps and over all, and its
tokens/s. Written after each run. On a machine without a GPU it runs a tiny model with sdpa and eager, to
check the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from vanilla_flash import attention, env
from vanilla_flash.attention import from_scratch
from vanilla_flash.bench import timing
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.results import provenance
from vanilla_flash.training import datamodule

from experiments.kernel_ladder.tables import REFERENCE, differences, distance

BACKENDS = [REFERENCE, REFERENCE, "from_scratch", "flash_attn_1", "sdpa_efficient"]


def summary(result: dict, tail: int) -> dict:
    """Per backend: each run's distance from the reference's first run of its seed (the mean |difference|
    over the steps, and the difference over the last `tail` steps), and its tokens/s."""
    out = {}
    for attn, by_seed in differences(result).items():
        tokens = {r["seed"]: r["tokens_per_s"] for r in result["runs"] if r["attn"] == attn and r["status"] == "ok"}
        out[attn] = {
            "tail_minus_reference": [round(sum(d for _, d in c[-tail:]) / len(c[-tail:]), 4) for c in by_seed.values()],
            "mean_abs_diff": [round(distance(c), 4) for c in by_seed.values()],
            "tokens_per_s": [tokens[seed] for seed in by_seed],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="in this order, for each seed")
    parser.add_argument("--t4", action="store_true", help="15 GiB of GPU memory, from_scratch as compute_75 PTX")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    if gpu and args.t4:
        torch.cuda.set_per_process_memory_fraction(15 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
        os.environ[from_scratch.ARCH_VARIABLE] = "compute_75"
    steps = args.steps if gpu else 3
    base = TrainConfig.from_yaml("notebooks/params/t4.yaml", data_source="sample", max_steps=steps, log_every=1,
                                 run_dir="runs/ladder-train")  # fmt: skip
    # notebook 3's schedule over `steps`: warm-up a tenth of them, at most its own (10 of 100, 50 of 600)
    base = dataclasses.replace(base, warmup_steps=min(base.warmup_steps, max(steps // 10, 1)))
    backends = args.backends.split(",")
    if not gpu:
        base = dataclasses.replace(base, model_size="tiny", seq_len=64, batch_size=4, accumulate=1, precision="32-true")
        backends = [REFERENCE, REFERENCE, "eager"]
    machine = env.probe()
    result = {"kind": "kernel_ladder_train", **provenance.provenance(), "steps": steps, "t4_terms": args.t4,
              "from_scratch_arch": from_scratch.arch() if gpu else None, "runs": []}  # fmt: skip
    if gpu and attention.why_not("from_scratch", machine, dtype=torch.float16, head_dim=64) is None:
        start = time.perf_counter()
        from_scratch.kernel(from_scratch.arch())  # built before any run is timed
        result["from_scratch_build_seconds"] = round(time.perf_counter() - start, 1)
    tail = min(10, steps)
    for seed in range(base.seed, base.seed + args.seeds):
        for attn in backends:
            cfg = dataclasses.replace(base, attn=attn, seed=seed)
            run = {"attn": attn, "seed": seed, "status": "ok"}
            reason = attention.why_not(attn, machine, dtype=torch.float16 if gpu else None, head_dim=cfg.head_dim)
            if reason:
                run["status"] = f"cannot run here: {reason}"
            else:
                try:
                    data = datamodule.WikisourceData(cfg)
                    data.setup("fit")
                    row = bench_training.bare_loop(cfg, steps=steps, warmup=0, data_loader=data.train_dataloader())
                    run |= {"loss_curve": row["loss_curve"], "tokens_per_s": row["tokens_per_s"],
                            "peak_mem_gib": row["peak_mem_gib"]}  # fmt: skip
                except Exception as err:
                    run["status"] = timing.failure_status(err)
            timing.free_memory()
            result["runs"].append(run)
            result["summary"] = summary(result, tail)
            provenance.write_json(args.out, result)
            print({k: v for k, v in run.items() if k != "loss_curve"}, flush=True)
    print(result["summary"], flush=True)


if __name__ == "__main__":
    main()
