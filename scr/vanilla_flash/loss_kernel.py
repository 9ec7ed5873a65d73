"""The chunked loss's softmax step as one Triton kernel (`loss: chunked_triton`).

For each row of a chunk's logits (a few thousand positions x the vocabulary, in bf16) the loss needs
the row's log-sum-exp, its loss (the log-sum-exp minus the target's logit) and the gradient
softmax - one_hot(target): `vanilla_gpt.softmax_cross_entropy` in PyTorch, which torch.compile
fuses into one kernel of its own (on the H200 about 1.9 ms per chunk of 16384 positions,
results/h200/speed/plain_pytorch_profile.json: about what reading the 1.6 GB of logits three times
and writing the gradient once takes there). This kernel reads each row twice:
1. an online maximum of the row and sum of exponentials below it (one exponential per logit);
2. the gradient exp(x - lse) - [column == target], written in the logits' dtype;
and it works through the rows on a grid a few programs per multiprocessor wide, so that a row stays
in the L2 cache between the two readings: one pass over memory, if the cache keeps it.
On the H200 it is about 15% faster than torch.compile's kernel on one chunk (below). A row
whose target is -100 (not a target) gets a zero loss and a zero gradient.

It needs Triton and a CUDA GPU (or Triton's interpreter, TRITON_INTERPRET=1, which is how the tests
run it on a CPU); Triton also compiles it for sm_90 without a GPU, which a test does. `vanilla_gpt`
imports this module where Triton is installed.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

# Timed on the H200 at 36 settings (tools/gpu/loss_kernel_bench.py; results/h200/speed/loss_kernel.json,
# one chunk of 16384 positions x 50304): 8192 columns a step, 16 warps and 8 programs per multiprocessor
# was the fastest, 1.66 ms, against 1.98 for torch.compile's kernel and 2.15 for the first setting
# (32 warps, 2 programs). At 16 warps a thread takes 128 registers (a test compiles it for sm_90), so
# one program runs on a multiprocessor at a time and the others wait their turn: 1 program per
# multiprocessor took 2.22 ms, 2 took 1.72, 4 took 1.69.
BLOCK = 4096  # columns per step of a row's loop
WARPS = 32
PROGRAMS_PER_SM = 8  # programs per multiprocessor in the grid (each works through its share of rows)
FORM = "max_then_sum"  # how a row's log-sum-exp is found (the kernel's comments); "whole_row" ignores BLOCK
NO_TARGET = tl.constexpr(-100)  # a target to ignore, as in F.cross_entropy


@triton.jit
def _softmax_cross_entropy_grad(logits, targets, losses, grads, n_rows, n_programs, n_cols: tl.constexpr,
                                rows_per_program: tl.constexpr, BLOCK: tl.constexpr, FORM: tl.constexpr):  # fmt: skip
    program = tl.program_id(0)
    lanes = tl.arange(0, BLOCK)
    for i in range(rows_per_program):  # rows program, program + n_programs, ...
        row = program + i * n_programs
        if row < n_rows:
            start = row.to(tl.int64) * n_cols
            # 1. the row's log-sum-exp
            if FORM == "whole_row":  # the row in registers at once (BLOCK >= n_cols): one reading
                row_x = tl.load(logits + start + lanes, mask=lanes < n_cols, other=-float("inf"))  # kept in bf16
                top = tl.max(row_x, 0).to(tl.float32)
                lse = top + tl.log(tl.sum(tl.exp(row_x.to(tl.float32) - top), 0))
            elif FORM == "block_max":  # the row's running maximum, per lane the sum of exponentials below it
                top = tl.max(tl.full([BLOCK], -1e30, tl.float32), 0)  # finite: lanes past the end add exp(-inf) = 0
                total = tl.zeros([BLOCK], tl.float32)
                for col in range(0, n_cols, BLOCK):
                    x = tl.load(logits + start + col + lanes, mask=col + lanes < n_cols, other=-float("inf"))
                    x = x.to(tl.float32)
                    new_top = tl.maximum(top, tl.max(x, 0))
                    total = total * tl.exp(top - new_top) + tl.exp(x - new_top)
                    top = new_top
                lse = top + tl.log(tl.sum(total, 0))
            elif FORM == "lane_max":  # a running maximum per lane: no reduction across lanes inside the loop
                tops = tl.full([BLOCK], -1e30, tl.float32)
                total = tl.zeros([BLOCK], tl.float32)
                for col in range(0, n_cols, BLOCK):
                    x = tl.load(logits + start + col + lanes, mask=col + lanes < n_cols, other=-float("inf"))
                    x = x.to(tl.float32)
                    new_tops = tl.maximum(tops, x)
                    total = total * tl.exp(tops - new_tops) + tl.exp(x - new_tops)
                    tops = new_tops
                top = tl.max(tops, 0)
                lse = top + tl.log(tl.sum(total * tl.exp(tops - top), 0))
            else:  # "max_then_sum": the maximum in one reading (no exponentials), the sum in another
                tops = tl.full([BLOCK], -1e30, tl.float32)
                for col in range(0, n_cols, BLOCK):
                    x = tl.load(logits + start + col + lanes, mask=col + lanes < n_cols, other=-float("inf"))
                    tops = tl.maximum(tops, x.to(tl.float32))
                top = tl.max(tops, 0)
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
            # 2. the gradient, from the same logits (now in L2, or in registers for the whole row)
            if FORM == "whole_row":
                grad = tl.exp(row_x.to(tl.float32) - lse) - tl.where(lanes == safe, 1.0, 0.0)
                grad = tl.where(real, grad, 0.0)
                tl.store(grads + start + lanes, grad.to(grads.dtype.element_ty), mask=lanes < n_cols)
            else:
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
    block = triton.next_power_of_2(n_cols) if FORM == "whole_row" else BLOCK
    wrap_triton(_softmax_cross_entropy_grad)[(n_programs,)](
        logits,
        targets,
        losses,
        grads,
        n_rows,
        n_programs,
        n_cols=n_cols,
        rows_per_program=rows_per_program,
        BLOCK=block,
        FORM=FORM,
        num_warps=WARPS,
    )
    return losses, grads


def usable(device: torch.device) -> bool:
    """Whether the kernel runs on `device`: a CUDA GPU, or any device under Triton's interpreter."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
