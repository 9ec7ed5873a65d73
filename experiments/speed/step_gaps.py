"""Where the GPU waits in a training step: one configuration of the speed run (`run.SPEED_VARIANTS`) through
Lightning and in the bare loop, a few steps of each under the profiler after the warm-up, into OUT.json:

    python experiments/speed/step_gaps.py OUT.json [--variant 2] [--steps 10] [--set KEY=VALUE ...]

For each loop: the wall time of a step, the time the GPU was busy in it (the union of its kernels, copies and
fills), the rest (idle), how far ahead of the GPU the CPU launched its work (the median, and the share launched
less than 50 us before it ran: the GPU waiting on the CPU), and the longest gaps between two busy stretches, each
with the operations the CPU was inside when it launched the work ending it (PyTorch's operators and the regions
they run in: a compiled graph, the optimizer's step) and whether that launch came after the gap began (the GPU
waited for the CPU) or before (it waited on something else). No Python stacks under the profiler: tracing every
Python call would slow the CPU enough to make gaps of its own. Then every call that waited for the GPU in the same
steps (`torch.cuda.set_sync_debug_mode`), counted per place in the code. The speed run's Lightning / bare column
says how much Lightning costs; this says where. Needs a CUDA GPU for the gaps and the waits; on a CPU it runs the
same steps to check the script itself."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import json
import tempfile
import traceback
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from torch.profiler import ProfilerActivity, profile
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.results import provenance

from experiments.speed import run as speed

GPU_WORK = ("kernel", "gpu_memcpy", "gpu_memset")  # the trace's categories of what runs on the GPU
LAUNCHES = ("cuda_runtime", "cuda_driver")  # ... and of the CPU's calls that launch it (Triton's: the driver's)
CPU_SIDE = ("cpu_op", "user_annotation", "python_function")  # what the CPU was inside when it launched
# frames of these are the machinery, not the place in the code that asked for the work ("/torch/": PyTorch's own
# package; Lightning's `lightning/pytorch/` is kept, for a wait inside it is where its trainer asked)
MACHINERY = ("/torch/", "<built-in", "threading.py", "contextlib.py", "warnings.py", "functools.py")


class Window:
    """The profiler and the GPU's waits over `steps` steps, started and stopped from a training loop."""

    def __init__(self, steps: int):
        self.steps, self.profiler, self.trace, self.waits = steps, None, None, collections.Counter()
        self._catching = None

    def start(self) -> None:
        _sync()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self.profiler = profile(activities=activities)
        self.profiler.__enter__()
        self._catching = warnings.catch_warnings()
        self._catching.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._record
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        self._catching.__exit__(None, None, None)
        _sync()
        self.profiler.__exit__(None, None, None)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "trace.json"
            self.profiler.export_chrome_trace(str(path))
            self.trace = json.loads(path.read_text())
        self.profiler = None

    def _record(self, message, category, filename, lineno, file=None, line=None) -> None:
        if "synchroniz" not in str(message):
            return
        frames = [f for f in traceback.extract_stack()[:-1] if not any(m in f.filename for m in MACHINERY)]
        self.waits[" <- ".join(_frame(f.filename, f.lineno, f.name) for f in frames[-4:][::-1])] += 1


class LightningWindow(L.Callback):
    """`Window` over the Lightning steps after the first `warmup`."""

    def __init__(self, window: Window, warmup: int):
        self.window, self.warmup = window, warmup

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.window.start()
        elif trainer.global_step == self.warmup + self.window.steps and self.window.profiler is not None:
            self.window.stop()


def step_gaps(cfg: TrainConfig, steps: int = 10, warmup: int = 10, top: int = 12) -> dict:
    """The Lightning run of `cfg`, then the bare loop on the same model, data and precision
    (`bench.training.lightning_overhead`), each profiled over `steps` steps after `warmup`."""
    lightning, bare, done = Window(steps), Window(steps), [0]

    def after_step():
        done[0] += 1
        if done[0] == warmup:
            bare.start()
        elif done[0] == warmup + steps:
            bare.stop()

    bench_training.lightning_overhead(
        cfg, steps=steps, warmup=warmup, callbacks=(LightningWindow(lightning, warmup),), after_step=after_step
    )
    return {name: {**gaps(w.trace, steps, top), "waits_per_step": _per_step(w.waits, steps)}
            for name, w in (("lightning", lightning), ("bare", bare))}  # fmt: skip


def gaps(trace: dict, steps: int, top: int = 12) -> dict:
    """From a chrome trace of `steps` steps: wall, busy and idle milliseconds per step, and the `top` longest
    gaps in the GPU's work, each with what the CPU was inside when it launched the work ending it."""
    events = (trace or {}).get("traceEvents", [])  # no trace: the loop stopped before its window ended
    work = sorted((e for e in events if e.get("cat") in GPU_WORK and "dur" in e), key=lambda e: e["ts"])
    timed = [e for e in events if "dur" in e and e.get("ph") == "X"]
    if not timed:
        return {"wall_ms_per_step": None}
    wall = max(e["ts"] + e["dur"] for e in timed) - min(e["ts"] for e in timed)
    stretches: list[list] = []  # [start, end, the first work of the stretch]
    for e in work:
        if stretches and e["ts"] <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], e["ts"] + e["dur"])
        else:
            stretches.append([e["ts"], e["ts"] + e["dur"], e])
    busy = sum(end - start for start, end, _ in stretches)
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in LAUNCHES and "correlation" in e.get("args", {})}  # fmt: skip
    cpu_side = [e for e in events if e.get("cat") in CPU_SIDE and "dur" in e]
    holes = sorted(
        ((after[0] - before[1], before[1], after[2]) for before, after in itertools.pairwise(stretches)),
        key=lambda h: -h[0],
    )[:top]
    rows = []
    for length, began, first in holes:
        launch = launches.get(first.get("args", {}).get("correlation"))
        row = {"ms": round(length / 1e3, 3), "work": first["name"][:120]}
        if launch:
            row["launched_after_gap_began"] = launch["ts"] > began
            row["inside"] = _inside(cpu_side, launch)
        rows.append(row)
    # how far ahead of the GPU the CPU launched each piece of work: near nothing, the GPU waits on the CPU
    leads = sorted(e["ts"] - launches[c]["ts"] for e in work if (c := e.get("args", {}).get("correlation")) in launches)
    return {
        "wall_ms_per_step": round(wall / steps / 1e3, 3),
        "gpu_busy_ms_per_step": round(busy / steps / 1e3, 3),
        "gpu_idle_ms_per_step": round((wall - busy) / steps / 1e3, 3),
        "launch_lead_ms": {
            "median": round(leads[len(leads) // 2] / 1e3, 3),
            "under_50us": round(sum(lead < 50 for lead in leads) / len(leads), 4),
        }
        if leads
        else None,
        "longest_gaps": rows,
    }


def _inside(cpu_side: list[dict], launch: dict, keep: int = 8) -> list[str]:
    """What `launch`'s thread was inside when it was made (operators, regions), innermost first."""
    at, thread = launch["ts"], launch.get("tid")
    around = [e for e in cpu_side if e.get("tid") == thread and e["ts"] <= at <= e["ts"] + e["dur"]]
    return [e["name"][:120] for e in sorted(around, key=lambda e: e["ts"], reverse=True)][:keep]


def _frame(filename: str, lineno: int, name: str) -> str:
    for root in ("site-packages/", "scr/", "experiments/"):
        if root in filename:
            filename = ("experiments/" if root == "experiments/" else "") + filename.split(root, 1)[1]
            break
    return f"{filename}:{lineno} {name}"


def _per_step(counts: collections.Counter, steps: int) -> list[dict]:
    return [{"where": where, "per_step": round(n / steps, 3)} for where, n in counts.most_common()]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the result file (JSON)")
    parser.add_argument("--config", default="configs/h200-speed.yaml")
    parser.add_argument("--variant", type=int, default=2, help="which of SPEED_VARIANTS, by position from 0")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per loop (two readings at log_every 5)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override parameters")
    args = parser.parse_args(argv)
    name, overrides = speed.SPEED_VARIANTS[args.variant]
    overrides = {**overrides, **{k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in args.set)}}
    cfg = TrainConfig.from_yaml(args.config, **overrides)
    cfg = dataclasses.replace(cfg, run_dir=f"{cfg.run_dir}/gaps")  # lightning_overhead starts it from step 0
    result = {"kind": "step_gaps", **provenance.provenance(), "variant": name, "overrides": overrides,
              "steps": args.steps}  # fmt: skip
    speed.use_allocator()  # as the speed run holds its memory
    result.update(step_gaps(cfg, steps=args.steps))
    provenance.write_json(args.out, result)
    for loop in ("lightning", "bare"):
        r = result[loop]
        waits = sum(w["per_step"] for w in r["waits_per_step"])
        print(f"{loop}: {r.get('wall_ms_per_step')} ms a step, GPU busy {r.get('gpu_busy_ms_per_step')}, "
              f"idle {r.get('gpu_idle_ms_per_step')}; {waits} waits for the GPU a step")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
