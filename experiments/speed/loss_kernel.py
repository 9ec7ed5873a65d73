"""The chunked loss's softmax step on one chunk (16384 positions x 50304, bf16), into OUT.json:
    python3 experiments/speed/loss_kernel.py OUT.json
- `torch_compiled`: `models.vanilla.softmax_cross_entropy` under torch.compile (what `loss: chunked` runs);
- `kernel`: `loss_kernel.softmax_cross_entropy_grad` at several columns per step, warps and programs
  per multiprocessor (the module's own setting marked), each checked against PyTorch (at commit
  c60bdd3 the kernel had four forms, and results/h200/speed/loss_kernel.json times each: `form`);
- `kernel_compiled`: the kernel inside a torch.compile'd function, as the model calls it.
Each with its time (CUDA events, median of 20), and the bandwidth of one read and one write of the
logits at that time. On a machine without a GPU it runs a small chunk in Triton's interpreter, to
check the script itself (TRITON_INTERPRET=1 must be set before Python starts).
"""

import itertools
import json
import statistics
import sys

import torch
from vanilla_flash.models import loss_kernel
from vanilla_flash.models import vanilla as vanilla_gpt
from vanilla_flash.results import provenance

gpu = torch.cuda.is_available()
device = "cuda" if gpu else "cpu"
rows, cols = (16384, 50304) if gpu else (6, 3000)
gen = torch.Generator(device).manual_seed(0)
logits = (torch.randn(rows, cols, device=device, generator=gen) * 3).to(torch.bfloat16)
targets = torch.randint(0, cols, (rows,), device=device, generator=gen)
targets[::7] = -100
result = {"kind": "loss_kernel_bench", **provenance.provenance(), "rows": rows, "cols": cols}
want_losses, want_grads = vanilla_gpt.softmax_cross_entropy(logits, targets)


def save() -> None:
    provenance.write_json(sys.argv[1], result)


def timed(fn) -> dict:
    out = fn()
    losses, grads = out
    row = {"max_loss_err": float((losses - want_losses).abs().max()),
           "max_grad_err": float((grads.float() - want_grads.float()).abs().max())}  # fmt: skip
    if not gpu:
        return row
    times = []
    for _ in range(20):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(begin.elapsed_time(end))
    ms = statistics.median(times)
    row.update(ms=round(ms, 4), one_pass_tb_per_s=round(2 * logits.numel() * 2 / ms / 1e9, 2))
    return row


def record(name: str, row: dict) -> None:
    result.setdefault(name, []).append(row) if name == "kernel" else result.update({name: row})
    print(name, json.dumps(row), flush=True)
    save()


try:
    compiled = torch.compile(vanilla_gpt.softmax_cross_entropy)
    record("torch_compiled", timed(lambda: compiled(logits, targets)))
except Exception as err:
    record("torch_compiled", {"error": f"{type(err).__name__}: {err}"[:300]})

own = (loss_kernel.BLOCK, loss_kernel.WARPS, loss_kernel.PROGRAMS_PER_SM)
grid = itertools.product((2048, 4096, 8192), (8, 16, 32), (1, 2, 4, 8)) if gpu else [own]
for block, warps, per_sm in grid:
    loss_kernel.BLOCK, loss_kernel.WARPS, loss_kernel.PROGRAMS_PER_SM = block, warps, per_sm
    row = {"block": block, "warps": warps, "programs_per_sm": per_sm, "own_setting": (block, warps, per_sm) == own}
    try:
        row.update(timed(lambda: loss_kernel.softmax_cross_entropy_grad(logits, targets)))
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"[:300]
    record("kernel", row)
loss_kernel.BLOCK, loss_kernel.WARPS, loss_kernel.PROGRAMS_PER_SM = own

if gpu:  # the interpreter does not run under torch.compile
    try:
        inside = torch.compile(lambda x, t: loss_kernel.softmax_cross_entropy_grad(x, t), fullgraph=True)
        record("kernel_compiled", timed(lambda: inside(logits, targets)))
    except Exception as err:
        record("kernel_compiled", {"error": f"{type(err).__name__}: {err}"[:300]})
