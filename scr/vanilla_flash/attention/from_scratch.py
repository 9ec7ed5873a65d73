"""`from_scratch`: the FlashAttention that notebook 05 builds, as an attention backend.

The forward pass is the last rung of the kernel ladder (`vanilla_flash.teach.ladder`; its source is
`vanilla_flash/kernels/rung6_prefetch.cu`): `mma.sync.m16n8k8` tensor-core products fed by `ldmatrix`, the
online softmax in registers, a swizzled shared-memory layout, the next key tile loaded during this one; the
backward pass is the ladder's last backward rung (`kernels/backward_mma.cu`), from the log-sum-exp the
forward pass keeps (`Attention`, an autograd function). Only instructions a T4 has. Both are compiled on
first use for this GPU (`builds.inline`: about a minute, needs nvcc, which Colab has) and kept for the
process.

What it does not do, refused by name before the call (`why_not_here`, and the call's own checks): inputs
other than float16, head dims other than 64 and 128, padding masks, a softmax scale other than 1/√d,
attention dropout, and a causal call with fewer queries than keys.
"""

from __future__ import annotations

import functools
import math
import os

import torch

from vanilla_flash.attention.flash_attn import causal
from vanilla_flash.builds import inline
from vanilla_flash.env import Machine
from vanilla_flash.errors import AttentionError

KERNEL_FILE = "rung6_prefetch.cu"  # the ladder's last rung
# what the kernels are built as: this GPU's machine code, or what this variable names ("compute_75": a T4's
# instructions as PTX, to train on a T4's terms on a newer GPU)
ARCH_VARIABLE = "VANILLA_FLASH_FROM_SCRATCH_ARCH"
BACKWARD_FILE = "backward_mma.cu"  # its last backward rung
HEAD_DIMS = (64, 128)


def why_not_here(machine: Machine, dtype, head_dim: int | None, training: bool) -> str | None:
    """This backend's own rules, beyond the registry's (CUDA, sm75+, no dropout): None if it runs."""
    from torch.utils.cpp_extension import CUDA_HOME

    if machine.device == "cuda" and CUDA_HOME is None:
        return "from_scratch is compiled here on first use and needs a CUDA compiler (nvcc), which this machine lacks"
    return inputs_cannot(dtype, head_dim)  # the backward pass takes what the forward pass takes


def inputs_cannot(dtype, head_dim: int | None) -> str | None:
    """Why the kernels cannot take a call of `dtype` and `head_dim`."""
    if dtype is not None and dtype != torch.float16:
        return "from_scratch takes float16 only (its kernel is written for a T4's fp16 tensor cores): use 16-mixed"
    if head_dim is not None and head_dim not in HEAD_DIMS:
        return f"from_scratch is written for head dims 64 and 128, not {head_dim}; use sdpa"
    return None


def arch() -> str:
    """What the kernels are built as here: `$VANILLA_FLASH_FROM_SCRATCH_ARCH`, else this GPU's machine code."""
    return os.environ.get(ARCH_VARIABLE) or inline.this_gpu()


@functools.cache
def kernel(arch: str):
    """The kernels compiled for `arch`, once per process: `attention_forward` and `gradients_backward`."""
    return inline.compile_kernels({"attention": KERNEL_FILE, "gradients": BACKWARD_FILE}, arch)


class Attention(torch.autograd.Function):
    """The forward kernel, and the backward kernel from the output and log-sum-exp it keeps."""

    @staticmethod
    def forward(ctx, q, k, v, is_causal: bool):
        out, lse = kernel(arch()).attention_forward(q, k, v, is_causal)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.is_causal = is_causal
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = kernel(arch()).gradients_backward(q, k, v, out, lse, grad_out.contiguous(), ctx.is_causal)
        return dq, dk, dv, None


def forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    """transformers' calling convention: (batch, heads, seq, head_dim) in, (batch, seq, heads, head_dim) out."""
    is_causal = causal(module, is_causal)
    head_dim = query.shape[-1]
    if attention_mask is not None:
        raise AttentionError("from_scratch takes no attention mask (no padded batches): use sdpa for those")
    if scaling is not None and not math.isclose(scaling, 1 / math.sqrt(head_dim), rel_tol=1e-6):
        raise AttentionError(f"from_scratch scales the scores by 1/√d only, not {scaling}")
    if is_causal and query.shape[-2] != key.shape[-2]:
        raise AttentionError("from_scratch runs causal calls with as many queries as keys only (no KV cache)")
    if reason := inputs_cannot(query.dtype, head_dim):
        raise AttentionError(reason)
    if query.shape != key.shape or key.shape != value.shape:
        raise AttentionError("from_scratch takes queries, keys and values of one shape")
    return Attention.apply(query, key, value, is_causal).transpose(1, 2), None
