"""Attention written out (`eager_forward`, the reference) and PyTorch's scaled_dot_product_attention,
with PyTorch choosing the kernel (`sdpa_forward`) or one kernel forced (`forced_sdpa`): the SDPA family
of the registry, in transformers' `AttentionInterface` calling convention."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vanilla_flash.attention.flash_attn import causal
from vanilla_flash.errors import AttentionError


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def eager_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    """softmax(Q K^T * scale + mask) V, written out: the reference every other backend must match."""
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif causal(module, is_causal) and query.shape[-2] > 1:
        q_len, k_len = query.shape[-2], key.shape[-2]
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return torch.matmul(probs, value).transpose(1, 2), None


def sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kw
    )


def forced_sdpa(kernel_name: str, backend_name: str) -> Callable:
    def forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if attention_mask is not None and backend_name in ("sdpa_flash",):
            raise AttentionError(
                f"{backend_name} cannot take a padding mask; use flash_attn_2 (variable-length), "
                "sdpa_efficient or sdpa for padded batches"
            )
        if dropout and backend_name == "sdpa_flash" and not query.is_cuda:
            raise AttentionError("PyTorch's CPU flash kernel has no dropout; use sdpa or set attn_pdrop=0")
        # a new context manager every call: one instance cannot be re-entered
        try:
            with sdpa_kernel(getattr(SDPBackend, kernel_name)):
                return sdpa_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kw)
        except RuntimeError as err:
            if "No available kernel" not in str(err) and "No viable backend" not in str(err):
                raise
            raise AttentionError(
                f"PyTorch SDPA could not run its {kernel_name} kernel for this call (device "
                f"{query.device}, dtype {dtype_name(query.dtype)}, head dim {query.shape[-1]}, dropout "
                f"{dropout}, mask {'yes' if attention_mask is not None else 'no'}); PyTorch's warnings "
                "above say which condition failed. Use attention 'sdpa' to let PyTorch choose."
            ) from err

    forward.__name__ = f"{backend_name}_forward"
    return forward
