"""The chunked loss's softmax step as one Triton kernel (`loss: chunked_triton`).

For each row of a chunk's logits (a few thousand positions x the vocabulary, in bf16) the loss needs
the row's log-sum-exp, its loss (the log-sum-exp minus the target's logit) and the gradient
softmax - one_hot(target): `models.vanilla.softmax_cross_entropy` in PyTorch, which torch.compile
fuses into one kernel of its own (on the H200 about 1.96 ms per chunk of 16384 positions,
results/h200/speed/loss_kernel.json). This kernel reads each row three times, with no reduction
across a program's lanes inside any of its loops:
1. the row's maximum, each lane keeping its own (no exponentials);
2. the sum of exponentials below that maximum (one exponential per logit);
3. the gradient exp(x - lse) - [column == target], written in the logits' dtype;
and it works through the rows on a grid a few programs per multiprocessor wide, so that a row stays
in the L2 cache between the readings: one pass over memory, if the cache keeps it. On the H200 it
is about 30% faster than torch.compile's kernel on one chunk (below). A row whose target is -100
(not a target) gets a zero loss and a zero gradient.

It needs Triton and a CUDA GPU (or Triton's interpreter, TRITON_INTERPRET=1, which is how the tests
run it on a CPU); Triton also compiles it for sm_90 without a GPU, which a test does. `models.vanilla`
imports this module where Triton is installed.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

# Timed on the H200 at 116 settings (experiments/speed/loss_kernel.py at commit c60bdd3;
# results/h200/speed/loss_kernel.json, one chunk of 16384 positions x 50304): this form, 4096 columns a
# step, 32 warps and 8 programs per multiprocessor was the fastest, 1.40 ms, against 1.96 for
# torch.compile's kernel. The kernel before it (a running maximum of the whole block, so a reduction
# across its lanes at every step, and the sum in the same reading) took 1.62 ms at its best and 1.69
# at its setting then (8192 columns, 16 warps); a running maximum per lane, 1.59; the whole row in
# registers at once (one reading, but registers spilled), 1.59. At 32 warps a thread takes about 32
# registers (a test compiles it for sm_90): two programs run on a multiprocessor at a time. An online
# form (each lane's running maximum and its sum below it in one reading, so two readings of a row, not
# three; commit c23392d) was slower at every setting: 1.49 ms at its best against 1.39 for this form, on
# another H200 (results/h200/speed/probe-run/loss_kernel.json).
BLOCK = 4096  # columns per step of a row's loops
WARPS = 32
PROGRAMS_PER_SM = 8  # programs per multiprocessor in the grid (each works through its share of rows)
NO_TARGET = tl.constexpr(-100)  # a target to ignore, as in F.cross_entropy


@triton.jit
def _softmax_cross_entropy_grad(
    logits,
    targets,
    losses,
    grads,
    n_rows,
    n_programs,
    n_cols: tl.constexpr,
    rows_per_program: tl.constexpr,
    BLOCK: tl.constexpr,
):
    program = tl.program_id(0)
    lanes = tl.arange(0, BLOCK)
    for i in range(rows_per_program):  # rows program, program + n_programs, ...
        row = program + i * n_programs
        if row < n_rows:
            start = row.to(tl.int64) * n_cols
            # 1. the row's maximum: each lane its own, one reduction at the end
            tops = tl.full([BLOCK], -1e30, tl.float32)  # finite: lanes past the row's end add exp(-inf) = 0
            for col in range(0, n_cols, BLOCK):
                x = tl.load(logits + start + col + lanes, mask=col + lanes < n_cols, other=-float("inf"))
                tops = tl.maximum(tops, x.to(tl.float32))
            top = tl.max(tops, 0)
            # 2. the sum of exponentials below it, from the same logits (now in L2)
            total = tl.zeros([BLOCK], tl.float32)
            for col in range(0, n_cols, BLOCK):
                x = tl.load(logits + start + col + lanes, mask=col + lanes < n_cols, other=-float("inf"))
                total += tl.exp(x.to(tl.float32) - top)
            lse = top + tl.log(tl.sum(total, 0))
            target = tl.load(targets + row)
            real = target != NO_TARGET
            safe = tl.where(real, target, 0)
            target_logit = tl.load(logits + start + safe).to(tl.float32)
            tl.store(losses + row, tl.where(real, lse - target_logit, 0.0))
            # 3. the gradient
            for col in range(0, n_cols, BLOCK):
                cols = col + lanes
                x = tl.load(logits + start + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
                grad = tl.exp(x - lse) - tl.where(cols == safe, 1.0, 0.0)
                grad = tl.where(real, grad, 0.0)
                tl.store(grads + start + cols, grad.to(grads.dtype.element_ty), mask=cols < n_cols)


def _programs(n_rows: int, device: torch.device) -> int:
    if device.type != "cuda":  # the interpreter: a few programs are enough to exercise the row loop
        return max(1, min(n_rows, 3))
    return max(1, min(n_rows, PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count))


@triton_op("vanilla_flash::softmax_cross_entropy_grad", mutates_args={})
def softmax_cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row losses (float32) and d loss / d logits (in `logits`' dtype) of the rows of `logits`
    (rows x vocabulary, contiguous) against `targets` (-100: no target, zero loss and gradient)."""
    n_rows, n_cols = logits.shape
    losses = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    grads = torch.empty_like(logits)
    n_programs = _programs(n_rows, logits.device)
    rows_per_program = -(-n_rows // n_programs)
    wrap_triton(_softmax_cross_entropy_grad)[(n_programs,)](
        logits,
        targets,
        losses,
        grads,
        n_rows,
        n_programs,
        n_cols=n_cols,
        rows_per_program=rows_per_program,
        BLOCK=BLOCK,
        num_warps=WARPS,
    )
    return losses, grads


def usable(device: torch.device) -> bool:
    """Whether the kernel runs on `device`: a CUDA GPU, or any device under Triton's interpreter."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
