"""Stand-ins for the flash-attn 1.x, 2.x and 4 Python APIs, for machines without a GPU.

flash-attn cannot be installed on CPU, so these modules take its place at the import boundary:
same function names, same argument order, same tensor layouts ((tokens, heads, dim) with
cu_seqlens for the variable-length calls, (batch, seq, heads, dim) otherwise), and the same causal
alignment each version really has (1.x: top-left, 2.x and 4: bottom-right). They compute attention
with plain matmuls, so the project's call code (layouts, unpadding, cu_seqlens, causal handling)
is tested against eager attention. Each call is recorded in `calls`.
"""

from __future__ import annotations

import types

import torch


def _attend(q, k, v, scale, causal, top_left):
    """One sequence: q (Sq, H, D), k/v (Sk, H, D) -> (Sq, H, D)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.einsum("qhd,khd->hqk", q.float(), k.float()) * scale
    if causal:
        sq, sk = q.shape[0], k.shape[0]
        offset = 0 if top_left else sk - sq
        allowed = torch.ones(sq, sk, dtype=torch.bool).tril(offset)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v.float()).to(q.dtype)


def _varlen(q, k, v, cu_q, cu_k, scale, causal, top_left):
    assert cu_q.dtype == torch.int32 and cu_k.dtype == torch.int32, "cu_seqlens must be int32"
    assert q.dim() == 3, "variable-length calls take (total_tokens, heads, head_dim)"
    out = torch.empty_like(q)
    for i in range(len(cu_q) - 1):
        qs, qe, ks, ke = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i]), int(cu_k[i + 1])
        out[qs:qe] = _attend(q[qs:qe], k[ks:ke], v[ks:ke], scale, causal, top_left)
    return out


def _batched(q, k, v, scale, causal, top_left):
    assert q.dim() == 4, "flash_attn_func takes (batch, seq, heads, head_dim)"
    return torch.stack([_attend(q[b], k[b], v[b], scale, causal, top_left) for b in range(q.shape[0])])


def make_modules(major: int, calls: list) -> dict[str, types.ModuleType]:
    """sys.modules entries that make `import flash_attn...` find a fake flash-attn `major`."""
    package = types.ModuleType("flash_attn")
    package.__version__ = {1: "1.0.9", 2: "2.8.3", 4: "4.0.0b36"}[major]
    interface = types.ModuleType("flash_attn.flash_attn_interface")
    modules = {"flash_attn": package, "flash_attn.flash_attn_interface": interface}
    package.flash_attn_interface = interface

    if major == 1:

        def flash_attn_unpadded_func(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, softmax_scale=None,
                                     causal=False, return_attn_probs=False):  # fmt: skip
            # the real 1.0.9 allocates `out` like q and its backward requires it contiguous
            assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous(), "contiguous q/k/v"
            calls.append(dict(fn="unpadded", causal=causal, dropout=dropout_p, cu_q=cu_q.tolist(), max_q=max_q))
            return _varlen(q, k, v, cu_q, cu_k, softmax_scale, causal, top_left=True)

        interface.flash_attn_unpadded_func = flash_attn_unpadded_func
    elif major == 2:

        def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_):
            calls.append(dict(fn="func", causal=causal, dropout=dropout_p))
            return _batched(q, k, v, softmax_scale, causal, top_left=False)

        def flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p=0.0, softmax_scale=None,
                                   causal=False, **_):  # fmt: skip
            calls.append(dict(fn="varlen", causal=causal, dropout=dropout_p, cu_q=cu_q.tolist(), max_q=max_q))
            return _varlen(q, k, v, cu_q, cu_k, softmax_scale, causal, top_left=False)

        interface.flash_attn_func = flash_attn_func
        interface.flash_attn_varlen_func = flash_attn_varlen_func
    else:
        cute = types.ModuleType("flash_attn.cute")

        def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **_):
            calls.append(dict(fn="func", causal=causal))
            return _batched(q, k, v, softmax_scale, causal, top_left=False), None  # (out, lse)

        def flash_attn_varlen_func(q, k, v, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None,
                                   max_seqlen_k=None, softmax_scale=None, causal=False, **_):  # fmt: skip
            calls.append(dict(fn="varlen", causal=causal, cu_q=cu_seqlens_q.tolist(), max_q=max_seqlen_q))
            return _varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale, causal, top_left=False), None

        def _flash_attn_fwd(q, k, v, softmax_scale=None, causal=False, return_lse=False, **_):
            calls.append(dict(fn="fwd", causal=causal))
            out = _batched(q, k, v, softmax_scale, causal, top_left=False)
            scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
            scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
            if causal:
                allowed = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool).tril(k.shape[1] - q.shape[1])
                scores = scores.masked_fill(~allowed, float("-inf"))
            return out, scores.logsumexp(-1), None, None, None  # out, lse (batch, heads, seq), and 3 more

        def _flash_attn_bwd(q, k, v, out, dout, lse, softmax_scale=None, causal=False, *_, dq=None, dk=None, dv=None,
                            **__):  # fmt: skip
            # as the kernel does it, from the saved log-sum-exp: a custom operator's body has no autograd;
            # into dq, dk, dv where given (any strides), as flash-attn 4 does
            given = (dq, dk, dv)
            calls.append(dict(fn="bwd", causal=causal, into=given if dq is not None else None))
            scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
            scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
            if causal:
                allowed = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool).tril(k.shape[1] - q.shape[1])
                scores = scores.masked_fill(~allowed, float("-inf"))
            p = (scores - lse[..., None]).exp()
            dv = torch.einsum("bhqk,bqhd->bkhd", p, dout.float())
            dp = torch.einsum("bqhd,bkhd->bhqk", dout.float(), v.float())
            ds = p * (dp - (dout.float() * out.float()).sum(-1).transpose(1, 2)[..., None])
            dq = torch.einsum("bhqk,bkhd->bqhd", ds, k.float()) * scale
            dk = torch.einsum("bhqk,bqhd->bkhd", ds, q.float()) * scale
            grads = (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype))
            if given[0] is None:
                return grads
            for into, grad in zip(given, grads, strict=True):
                into.copy_(grad)
            return given

        interface = types.ModuleType("flash_attn.cute.interface")
        interface._flash_attn_fwd, interface._flash_attn_bwd = _flash_attn_fwd, _flash_attn_bwd
        cute.flash_attn_func = flash_attn_func
        cute.flash_attn_varlen_func = flash_attn_varlen_func
        cute.interface = interface
        package.cute = cute
        modules["flash_attn.cute"] = cute
        modules["flash_attn.cute.interface"] = interface
    return modules
