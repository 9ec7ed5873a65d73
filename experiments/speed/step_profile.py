"""Where a GPT-2 124M training step spends its GPU time, and what a few changes do, into OUT.json:
    python3 experiments/speed/step_profile.py OUT.json [SECONDS]
1. `layouts`: GPT-2's matmuls (65536 positions) forward and backward in bfloat16 with the weight
   stored as transformers keeps it, (in, out), which the vanilla model keeps, and as nn.Linear keeps
   it, (out, in): whether the layout costs anything;
2. `profile`: a profiled bare-loop run of the best `bench speed` configuration
   (`experiments.speed.run.SPEED_VARIANTS`' first): GPU time per group of kernels (matmul, attention, the
   Triton kernels, optimizer, other) and the top kernels by time;
3. `variants`: bare-loop tokens/s of a few changes to the profiled one (torch.compile's softmax
   instead of the loss kernel, which `bench speed` has not measured on its own at the kernel's
   setting; other chunk sizes; a larger batch), each written as soon as it is measured, until
   SECONDS (default 420) have passed.
On a machine without a GPU it runs a tiny model, to check the script itself. GPT-2 in the plainest
PyTorch, which this script measured at commit 3992721 (results/h200/speed/plain_pytorch_profile.json),
is now part of `bench speed` (`experiments.speed.plain_gpt.plain_pytorch_loop`).
"""

import contextlib
import dataclasses
import functools
import json
import sys
import time
from unittest import mock

import torch
import torch.nn.functional as F
from vanilla_flash.bench import timing
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.models import vanilla as vanilla_gpt
from vanilla_flash.results import provenance

from experiments.speed import kernel_times
from experiments.speed import run as speed

out_path, budget_s = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 420
started = time.perf_counter()
gpu = torch.cuda.is_available()
result = {"kind": "speed_profile", **provenance.provenance()}


def save() -> None:
    provenance.write_json(out_path, result)


def gpu_ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / repeats


# 1. the weight layout
def layout_row(m: int, k: int, n: int) -> dict:
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(m, n, device="cuda", dtype=torch.bfloat16)
    bias = torch.zeros(n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    in_out = torch.randn(k, n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    out_in = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    row = {"m": m, "k": k, "n": n}
    for name, forward in (("in_out_addmm", lambda: torch.addmm(bias, x, in_out)),
                          ("out_in_linear", lambda: F.linear(x, out_in, bias))):  # fmt: skip
        ms = gpu_ms(lambda forward=forward: forward().backward(grad))
        row[name] = {"ms": round(ms, 4), "tflops": round(6 * m * k * n / ms / 1e9, 1)}
    return row


if gpu:
    result["layouts"] = [layout_row(65536, k, n) for k, n in ((768, 2304), (768, 768), (768, 3072), (3072, 768))]
    print(json.dumps(result["layouts"]), flush=True)
    save()

# 2. the profile of the best variant
if gpu:
    base = TrainConfig.from_yaml("configs/h200-speed.yaml")
    best = dataclasses.replace(base, **speed.SPEED_VARIANTS[0][1], run_dir="runs/profile")
else:
    best = TrainConfig(model_impl="vanilla", loss="chunked", model_size="tiny", seq_len=64, batch_size=4,
                       tokenizer="gpt2", run_dir="runs/profile")  # fmt: skip

activities = [torch.profiler.ProfilerActivity.CUDA] if gpu else [torch.profiler.ProfilerActivity.CPU]
steps, warmup, profiled = 8, 10, 4  # the profiler records exactly steps warmup+1 .. warmup+profiled
prof = torch.profiler.profile(activities=activities)
done = 0


def profile_window() -> None:
    global done
    done += 1
    if done in (warmup, warmup + profiled):
        if gpu:
            torch.cuda.synchronize()  # every kernel of the steps before has run: none is counted twice
        if done == warmup:
            prof.start()
        else:
            prof.stop()


timed = bench_training.bare_loop(best, steps=steps, warmup=warmup, after_step=profile_window)


result["profile"] = {
    "variant": {
        "model_impl": best.model_impl,
        "loss": best.loss,
        "residual": best.residual,
        "batch": best.batch_size,
        "attn": best.attn,
    },
    "bare_tokens_per_s_under_profiler": timed["tokens_per_s"],
    **kernel_times.per_step(prof, profiled, gpu, top=30),
}
print(json.dumps(result["profile"]["groups_ms_per_step"]), result["profile"]["gpu_ms_per_step"], flush=True)
save()


# 3. a few changes, each on its own
variants = [
    ("as profiled", {}, contextlib.nullcontext),
    ("torch.compile's softmax, not the loss kernel", {"loss": "chunked"}, contextlib.nullcontext),
    ("chunks of 32768 positions", {}, functools.partial(mock.patch.object, vanilla_gpt, "CHUNK_TOKENS", 32768)),
    ("chunks of 8192 positions", {}, functools.partial(mock.patch.object, vanilla_gpt, "CHUNK_TOKENS", 8192)),
    ("batch 192", {"batch_size": 192 if gpu else 6}, contextlib.nullcontext),
]
result["variants"] = []
for name, overrides, context in variants:
    if time.perf_counter() - started > budget_s:
        result["variants"].append({"name": name, "status": "not run: out of time"})
        continue
    torch._dynamo.reset()
    cfg = dataclasses.replace(best, **overrides)
    row = {"name": name, "batch": cfg.batch_size, "compile_mode": cfg.compile_mode, "status": "ok"}
    begin = time.perf_counter()
    try:
        with context():
            row.update(bench_training.bare_loop(cfg, steps=20 if gpu else 2, warmup=8 if gpu else 1))
    except Exception as err:
        row["status"] = timing.failure_status(err)
    row["seconds"] = round(time.perf_counter() - begin, 1)
    timing.free_memory()
    result["variants"].append(row)
    print(json.dumps(row), flush=True)
    save()
