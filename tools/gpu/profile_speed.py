"""Where a GPT-2 124M training step spends its GPU time, and what a few changes do, into OUT.json:
    python3 tools/gpu/profile_speed.py OUT.json [SECONDS]
1. `layouts`: GPT-2's matmuls (65536 positions) forward and backward in bfloat16 with the weight
   stored as transformers keeps it, (in, out), which the vanilla model keeps, and as nn.Linear keeps
   it, (out, in): whether the layout costs anything;
2. `profile`: a profiled bare-loop run of the best `bench speed` variant: GPU time per group of
   kernels (matmul, attention, the Triton kernels inductor generated, optimizer, other) and the top
   kernels by time;
3. `plain_pytorch`: GPT-2 124M in the plainest PyTorch (nn.Linear, SDPA `is_causal`, tied head,
   F.cross_entropy, fused AdamW, autocast bf16, torch.compile) in a loop of its own, with and without
   gradient clipping, its vocabulary padded to 50304 or GPT-2's own 50257: how fast this GPU trains
   GPT-2 without the project;
4. `variants`: bare-loop tokens/s of a few changes to the profiled one (the residual stream in bf16,
   batch, inductor options), each written as soon as it is measured, until SECONDS (default 420)
   have passed.
On a machine without a GPU it runs a tiny model, to check the script itself.
"""

import contextlib
import dataclasses
import json
import sys
import time

import torch
import torch.nn.functional as F
from vanilla_flash import bench_training, machine_report, timing
from vanilla_flash.config import TrainConfig

out_path, budget_s = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 420
started = time.perf_counter()
gpu = torch.cuda.is_available()
result = {"kind": "speed_profile", **machine_report.provenance()}


def save() -> None:
    with open(out_path, "w") as out:
        out.write(json.dumps(result, indent=1, default=str) + "\n")


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
    best = dataclasses.replace(base, model_impl="vanilla", loss="chunked", batch_size=64, run_dir="runs/profile")
else:
    best = TrainConfig(model_impl="vanilla", loss="chunked", model_size="tiny", seq_len=64, batch_size=4,
                       tokenizer="gpt2", run_dir="runs/profile")  # fmt: skip

GROUPS = (
    ("attention", ("cudnn", "flash", "fmha", "attn")),
    ("matmul", ("gemm", "cutlass", "nvjet", "xmma", "sm90_", "cublas")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("inductor (Triton)", ("triton",)),
)


def group_of(name: str) -> str:
    low = name.lower()
    return next((group for group, keys in GROUPS if any(k in low for k in keys)), "other")


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


def self_us(e) -> float:
    return e.self_device_time_total if gpu else e.self_cpu_time_total


events = [e for e in prof.key_averages() if self_us(e) > 0]
total_us = sum(self_us(e) for e in events) / profiled
groups: dict[str, float] = {}
for e in events:
    groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + self_us(e) / profiled
top = sorted(events, key=lambda e: -self_us(e))[:30]
result["profile"] = {
    "variant": {"model_impl": best.model_impl, "loss": best.loss, "batch": best.batch_size, "attn": best.attn},
    "bare_tokens_per_s_under_profiler": timed["tokens_per_s"],
    "gpu_ms_per_step": round(total_us / 1e3, 3),
    "groups_ms_per_step": {g: round(us / 1e3, 3) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])},
    "top_kernels": [
        {
            "name": e.key[:160],
            "calls_per_step": e.count / profiled,
            "group": group_of(e.key),
            "ms_per_step": round(self_us(e) / profiled / 1e3, 3),
        }
        for e in top
    ],  # fmt: skip
}
print(json.dumps(result["profile"]["groups_ms_per_step"]), result["profile"]["gpu_ms_per_step"], flush=True)
save()


# 3. GPT-2 in the plainest PyTorch, in a loop of its own: how fast this GPU trains GPT-2 without the
# project (an earlier H200 session measured such a model at 562k tokens/s, batch 32), beside the rows above
class PlainBlock(torch.nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.up, self.down = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, w // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.ln_2(x)), approximate="tanh"))


class PlainGPT(torch.nn.Module):
    def __init__(self, layers=12, heads=12, width=768, vocab=50304, seq=1024):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(vocab, width), torch.nn.Embedding(seq, width)
        self.blocks = torch.nn.ModuleList(PlainBlock(width, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(width)
        for module in self.modules():  # GPT-2's initialisation, near enough for a speed test
            if isinstance(module, torch.nn.Linear | torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # the head tied to the embedding
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))


def plain_loop(batch: int, seq: int, clip: bool, steps: int, warmup: int, **sizes) -> dict:
    torch.manual_seed(0)
    model = PlainGPT(seq=seq, **sizes).to(device)
    model.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, fused=gpu)
    ids = torch.randint(0, 50257, (batch, seq + 1), device=device)
    for i in range(steps + warmup):
        if i == warmup:
            if gpu:
                torch.cuda.synchronize()
            begin = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=gpu):
            loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if gpu:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - begin) / steps
    return {"tokens_per_s": round(batch * seq / seconds, 1), "step_ms": round(seconds * 1e3, 2),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
            "loss": float(loss.detach())}  # fmt: skip


device = "cuda" if gpu else "cpu"
# batch, clip, vocab (commit 3992721 also ran vocab 50257 and no clipping: speed/plain_pytorch_profile.json)
plain_runs = [(32, True, 50304), (128, True, 50304)]
plain_runs = plain_runs if gpu else [(2, True, 50257)]
sizes = {} if gpu else {"layers": 2, "heads": 2, "width": 64}
result["plain_pytorch"] = []
for batch, clip, vocab in plain_runs:
    torch._dynamo.reset()
    row = {"batch": batch, "seq": 1024 if gpu else 64, "grad_clip": clip, "vocab": vocab, "status": "ok"}
    try:
        row.update(plain_loop(batch, row["seq"], clip, steps=20 if gpu else 2, warmup=8 if gpu else 1, vocab=vocab,
                              **sizes))  # fmt: skip
    except Exception as err:
        row["status"] = f"error: {type(err).__name__}: {err}"[:300]
    timing.free_memory()
    result["plain_pytorch"].append(row)
    print(json.dumps(row), flush=True)
    save()


# 4. a few changes, each on its own
variants = [
    ("as profiled", {}, contextlib.nullcontext),
    ("bf16 residual stream", {"residual": "bf16", "precision": "bf16-mixed"}, contextlib.nullcontext),
    ("batch 128", {"batch_size": 128 if gpu else 8}, contextlib.nullcontext),
    ("compile mode max-autotune-no-cudagraphs", {"compile_mode": "max-autotune-no-cudagraphs"}, contextlib.nullcontext),
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
        row["status"] = "OOM" if timing.is_oom(err) else f"error: {type(err).__name__}: {err}"[:300]
    row["seconds"] = round(time.perf_counter() - begin, 1)
    timing.free_memory()
    result["variants"].append(row)
    print(json.dumps(row), flush=True)
    save()
