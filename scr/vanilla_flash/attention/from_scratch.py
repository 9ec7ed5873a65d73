"""`from_scratch`: the FlashAttention forward pass that notebook 05 builds, as an attention backend.

The kernel is the last rung of the kernel ladder (`vanilla_flash.teach.ladder`; its source is
`vanilla_flash/kernels/rung6_prefetch.cu`): `mma.sync.m16n8k8` tensor-core products fed by `ldmatrix`, the
online softmax in registers, a swizzled shared-memory layout, the next key tile loaded during this one,
using only instructions a T4 has. It is compiled on first use for this GPU (`builds.inline`: about a
minute, needs nvcc, which Colab has) and kept for the process.

What it does not do, refused by name before the call (`why_not_here`, and the call's own checks): inputs
other than float16, head dims other than 64 and 128, padding masks, a softmax scale other than 1/√d,
attention dropout, a causal call with fewer queries than keys, and gradients (forward only: the backward
pass is part 2 of the course).
"""

from __future__ import annotations

import functools
import math

import torch

from vanilla_flash.attention.flash_attn import causal
from vanilla_flash.builds import inline
from vanilla_flash.env import Machine
from vanilla_flash.errors import AttentionError

KERNEL_FILE = "rung6_prefetch.cu"  # the ladder's last rung
HEAD_DIMS = (64, 128)


def why_not_here(machine: Machine, dtype, head_dim: int | None, training: bool) -> str | None:
    """This backend's own rules, beyond the registry's (CUDA, sm75+, no dropout): None if it runs."""
    from torch.utils.cpp_extension import CUDA_HOME

    if machine.device == "cuda" and CUDA_HOME is None:
        return "from_scratch is compiled here on first use and needs a CUDA compiler (nvcc), which this machine lacks"
    return inputs_cannot(dtype, head_dim, training)


def inputs_cannot(dtype, head_dim: int | None, training: bool) -> str | None:
    """Why the kernel cannot take a call of `dtype` and `head_dim` (and gradients, if `training`)."""
    if dtype is not None and dtype != torch.float16:
        return "from_scratch takes float16 only (its kernel is written for a T4's fp16 tensor cores): use 16-mixed"
    if head_dim is not None and head_dim not in HEAD_DIMS:
        return f"from_scratch is written for head dims 64 and 128, not {head_dim}; use sdpa"
    if training:
        return "from_scratch is a forward pass only (its backward is part 2 of the course): use it to evaluate"
    return None


@functools.cache
def kernel(arch: str):
    """The kernel compiled for `arch`, once per process."""
    return inline.compile_kernels({"from_scratch": KERNEL_FILE}, arch)


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
    training = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if reason := inputs_cannot(query.dtype, head_dim, training):
        raise AttentionError(reason)
    if query.shape != key.shape or key.shape != value.shape:
        raise AttentionError("from_scratch takes queries, keys and values of one shape")
    out, _ = kernel(inline.this_gpu()).from_scratch_forward(query, key, value, is_causal)
    return out.transpose(1, 2), None
