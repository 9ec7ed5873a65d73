"""The MLP's bias + GELU (the tanh approximation GPT-2 uses) as two Triton kernels, forward and
backward, with the bias gradient summed inside the backward one (`gelu: triton`, vanilla model).

Under torch.compile the MLP's first matmul adds the bias, `F.gelu` is a kernel of its own, and the
backward pass takes two kernels over each layer's 3072-wide activations: the GELU's gradient, then
the bias gradient, which reads the incoming gradient and the pre-activation a second time to sum
them (on the H200: `fused_gelu_gelu_backward` and `fused_gelu_gelu_backward_sum` in
results/h200/speed/speed_profile.json). Here the first matmul has no bias; the forward kernel adds
it and applies GELU; the backward kernel reads the incoming gradient and the pre-activation once,
writes the gradient and sums its columns as it goes (partial sums per block of rows, added up after:
the same sum on every run). Both compute in float32 and write in the activations' dtype.

It needs Triton and a CUDA GPU, or Triton's interpreter (TRITON_INTERPRET=1), which is how the tests
run it on a CPU. `vanilla_gpt` imports this module where Triton is installed.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from vanilla_flash.loss_kernel import usable  # noqa: F401 (where the kernels run: the loss kernel's test)

# A tile of 8 rows x 256 columns over 8 warps: 8 bf16 values (16 bytes) a thread. Compiled for sm_90
# by Triton 3.6, the backward kernel then takes 80 registers a thread, so 3 programs run on a
# multiprocessor at once; 16 rows took 186 (one program). Not yet timed on a GPU.
BLOCK_ROWS, BLOCK_COLS = 8, 256
ROW_STEPS = 64  # tiles a backward program works down, summing the bias gradient (512 rows)
WARPS = 8
SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)
CUBIC = tl.constexpr(0.044715)


@triton.jit
def _half_one_plus_tanh(u):
    """(1 + tanh(v)) / 2 at v = sqrt(2/pi) (u + 0.044715 u^3), written as the sigmoid of 2v: one
    exponential, and no cancellation where tanh(v) is near -1 (exp overflows to inf there: 0)."""
    return 1.0 / (1.0 + tl.exp(-2.0 * SQRT_2_OVER_PI * (u + CUBIC * u * u * u)))


@triton.jit
def _bias_gelu_forward(pre, bias, act, n_rows, n_cols, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    first = tl.program_id(0) * BLOCK_ROWS  # the tile's first row: 64-bit offset to it, 32-bit inside it
    rows, cols = tl.arange(0, BLOCK_ROWS), tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    inside = (first + rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    at = rows[:, None] * n_cols + cols[None, :]
    start = first.to(tl.int64) * n_cols
    b = tl.load(bias + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    u = tl.load(pre + start + at, mask=inside, other=0.0).to(tl.float32) + b[None, :]
    tl.store(act + start + at, (u * _half_one_plus_tanh(u)).to(act.dtype.element_ty), mask=inside)


@triton.jit
def _bias_gelu_backward(grad_act, pre, bias, grad_pre, partial_bias, n_rows, n_cols, BLOCK_ROWS: tl.constexpr,
                        BLOCK_COLS: tl.constexpr, ROW_STEPS: tl.constexpr):  # fmt: skip
    rows, cols = tl.arange(0, BLOCK_ROWS), tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    at = rows[:, None] * n_cols + cols[None, :]  # inside a tile: 32-bit
    b = tl.load(bias + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    column_sums = tl.zeros([BLOCK_COLS], tl.float32)
    for step in range(ROW_STEPS):
        first = (tl.program_id(0) * ROW_STEPS + step) * BLOCK_ROWS
        inside = (first + rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        start = first.to(tl.int64) * n_cols
        u = tl.load(pre + start + at, mask=inside, other=0.0).to(tl.float32) + b[None, :]
        g = tl.load(grad_act + start + at, mask=inside, other=0.0).to(tl.float32)
        s = _half_one_plus_tanh(u)  # gelu(u) = u s; d s / d u = 2 s (1 - s) dv/du
        slope = s + u * 2.0 * s * (1.0 - s) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * u * u)
        grad = tl.where(inside, g * slope, 0.0)
        tl.store(grad_pre + start + at, grad.to(grad_pre.dtype.element_ty), mask=inside)
        column_sums += tl.sum(grad, axis=0)
    tl.store(partial_bias + tl.program_id(0) * n_cols + cols, column_sums, mask=cols < n_cols)


def _row_blocks(n_rows: int, rows_per_program: int) -> int:
    return max(1, triton.cdiv(n_rows, rows_per_program))


@triton_op("vanilla_flash::bias_gelu", mutates_args={})
def bias_gelu(pre: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation of `pre + bias` (`pre` rows x columns, `bias` one per
    column), as `F.gelu(pre + bias, approximate="tanh")`, in `pre`'s dtype; differentiable."""
    pre = pre.contiguous()
    act = torch.empty_like(pre)
    n_rows, n_cols = pre.shape
    grid = (_row_blocks(n_rows, BLOCK_ROWS), triton.cdiv(n_cols, BLOCK_COLS))
    wrap_triton(_bias_gelu_forward)[grid](pre, bias, act, n_rows, n_cols, BLOCK_ROWS=BLOCK_ROWS,
                                          BLOCK_COLS=BLOCK_COLS, num_warps=WARPS)  # fmt: skip
    return act


@triton_op("vanilla_flash::bias_gelu_backward", mutates_args={})
def bias_gelu_backward(grad_act: torch.Tensor, pre: torch.Tensor, bias: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The gradients of `bias_gelu` for `pre` (in its dtype) and for `bias` (float32 sums, in the
    bias's dtype), given the gradient of its output."""
    grad_act, pre = grad_act.contiguous(), pre.contiguous()
    grad_pre = torch.empty_like(pre)
    n_rows, n_cols = pre.shape
    row_blocks = _row_blocks(n_rows, BLOCK_ROWS * ROW_STEPS)
    partial = torch.empty(row_blocks, n_cols, dtype=torch.float32, device=pre.device)
    wrap_triton(_bias_gelu_backward)[(row_blocks, triton.cdiv(n_cols, BLOCK_COLS))](
        grad_act, pre, bias, grad_pre, partial, n_rows, n_cols, BLOCK_ROWS=BLOCK_ROWS, BLOCK_COLS=BLOCK_COLS,
        ROW_STEPS=ROW_STEPS, num_warps=WARPS)  # fmt: skip
    return grad_pre, partial.sum(0).to(bias.dtype)


def _keep_inputs(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pre, bias = ctx.saved_tensors
    return bias_gelu_backward(grad_act, pre, bias)


bias_gelu.register_autograd(_backward, setup_context=_keep_inputs)
