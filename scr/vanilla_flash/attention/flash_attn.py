"""The calls into flash-attn 1.x, 2.x and 4, and the variable-length helpers they share.

Each ``flash_attn_*_forward`` has the calling convention of transformers' ``AttentionInterface``
(see `vanilla_flash.attention.registry`, which registers them and checks every call against the backend's
limits before it gets here). The library is imported on first use (`import_flash_attn`), so this
module imports on a machine without flash-attn or without a GPU.

Layouts: transformers hands (batch, heads, seq, head_dim); flash-attn takes (batch, seq, heads,
head_dim), or (tokens, heads, head_dim) with int32 ``cu_seqlens`` offsets for its variable-length
calls, which is how a padding mask reaches it (`varlen_call`). Causal alignment differs by version:
1.x aligns the causal mask top-left, 2.x and 4 bottom-right (what decoding with a KV cache needs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vanilla_flash import targets
from vanilla_flash.builds import labels
from vanilla_flash.env import Machine, dist_version
from vanilla_flash.errors import AttentionError


def notebooks_for(major: int) -> str:
    return f"notebooks/{targets.for_flash_attn(major).notebook_set}"


def install_hint(major: int) -> str:
    """What to do when flash-attn `major` (1, 2 or 4) is not installed."""
    if major == 1:
        return (
            "flash-attn 1.x is not installed: build it from source with the "
            f"{notebooks_for(1)} notebooks (a few minutes; results/builds.json has the measured times)"
        )
    if major == 2:
        return (
            "flash-attn 2.x is not installed: install the prebuilt wheel that matches this torch, or, where "
            f"none exists, build just what GPT-2 needs (the {notebooks_for(2)} notebooks do either: 02_build)"
        )
    return f"flash-attn-4 is not installed: `pip install flash-attn-4` (see the {notebooks_for(4)} notebooks)"


def broken_hint(major: int, version: str, error: str) -> str:
    """What to do when flash-attn `major` is installed (`version`) but its import fails with `error`."""
    package = "flash-attn-4" if major == 4 else "flash-attn"
    return (
        f"{package} {version} is installed but cannot be imported ({error}): reinstall the build that matches "
        f"torch {torch.__version__}, or uninstall it and use sdpa (see {notebooks_for(major)})"
    )


def why_not_here(major: int, machine: Machine, dtype, head_dim: int | None) -> str | None:
    """Why flash-attn `major` cannot run a call of `dtype` and `head_dim` on `machine` (None: it can):
    not installed, installed but failing to import, or built without a kernel for it (the build's
    label, `vanilla_flash.builds.labels`)."""
    version = machine.flash_attn_4 if major == 4 else machine.flash_attn
    if not version or (major != 4 and machine.flash_attn_major() != major):
        return install_hint(major)
    if broken := (machine.flash_attn_4_error if major == 4 else machine.flash_attn_error):
        return broken_hint(major, version, broken)
    return build_cannot(major, version, machine.cc, dtype, head_dim) if machine.device == "cuda" else None


def build_cannot(major: int, version: str | None, cc: float, dtype, head_dim: int | None) -> str | None:
    """Why the installed flash-attn `version` has no kernel for a call on a GPU of capability `cc`
    (its label says what was built: `labels.build_of`), None if it has one or nothing is known."""
    built = labels.build_of(version) if major != 4 else None
    return labels.build_cannot(built, cc, dtype, head_dim) if built and built["major"] == major else None


def import_flash_attn(major: int):
    """The flash-attn module for `major`, or an AttentionError that says how to get it."""
    try:
        if major == 4:
            import flash_attn.cute as module

            return module
        from flash_attn import flash_attn_interface as module
    except Exception as err:  # not only ImportError: a half-broken package raises what it raises
        installed = dist_version("flash-attn-4") if major == 4 else dist_version("flash-attn")
        if installed and not isinstance(err, ImportError):
            raise AttentionError(broken_hint(major, installed, f"{type(err).__name__}: {err}")) from err
        if installed and "undefined symbol" in str(err):
            raise AttentionError(
                f"flash-attn {installed} is installed but was built for another torch/CUDA ({err}). "
                f"Reinstall the build that matches torch {torch.__version__} (see {notebooks_for(major)})."
            ) from err
        if major == 4 and installed and dist_version("flash-attn"):
            raise AttentionError(
                f"flash-attn-4 {installed} is installed, but `flash_attn` resolves to flash-attn "
                f"{dist_version('flash-attn')}'s package, which hides flash_attn.cute: install both into "
                f"the same site-packages, or only the one this GPU needs ({err})"
            ) from err
        raise AttentionError(install_hint(major) + f" ({err})") from err
    has_v1_api = hasattr(module, "flash_attn_unpadded_func")
    if major == 1 and not has_v1_api:
        raise AttentionError("the installed flash-attn is 2.x; use backend flash_attn_2 (flash_attn_1 needs 1.x)")
    if major == 2 and has_v1_api:
        raise AttentionError("the installed flash-attn is 1.x; use backend flash_attn_1 (flash_attn_2 needs 2.x)")
    return module


def causal(module, is_causal: bool | None) -> bool:
    return bool(is_causal if is_causal is not None else getattr(module, "is_causal", True))


# ---------------------------------------------------------------------------------------------
# Variable-length batches


def cu_seqlens(batch: int, seq_len: int, device) -> torch.Tensor:
    return torch.arange(0, (batch + 1) * seq_len, seq_len, dtype=torch.int32, device=device)


def unpad(x: torch.Tensor, keep: torch.Tensor):
    """(batch, seq, heads, dim) with keep[batch, seq] -> (tokens, heads, dim), indices, cu_seqlens, max len."""
    lengths = keep.sum(dim=-1, dtype=torch.int32)
    index = torch.nonzero(keep.flatten(), as_tuple=False).flatten()
    cu = F.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
    return x.reshape(-1, *x.shape[2:]).index_select(0, index), index, cu, int(lengths.max())


def repad(x: torch.Tensor, index: torch.Tensor, batch: int, seq_len: int) -> torch.Tensor:
    out = x.new_zeros(batch * seq_len, *x.shape[1:])
    out[index] = x
    return out.view(batch, seq_len, *x.shape[1:])


def varlen_call(call, q, k, v, attention_mask):
    """Run `call(q, k, v, cu_q, cu_k, max_q, max_k)` on (batch, seq, heads, dim) tensors, unpadding
    by the 2D padding mask (batch, kv_len) when there is one."""
    batch, q_len = q.shape[:2]
    k_len = k.shape[1]
    if attention_mask is None:
        cu_q = cu_seqlens(batch, q_len, q.device)
        cu_k = cu_q if k_len == q_len else cu_seqlens(batch, k_len, q.device)
        # with batch 1 the reshape is a strided view, not a copy: flash-attn 1.x then allocates a
        # strided output and its backward fails on `out.is_contiguous()` (seen at seq 16384 on an H100)
        q, k, v = (t.reshape(-1, *t.shape[2:]).contiguous() for t in (q, k, v))
        out = call(q, k, v, cu_q, cu_k, q_len, k_len)
        return out.view(batch, q_len, *out.shape[1:])
    keep = attention_mask.bool()
    q_u, q_index, cu_q, max_q = unpad(q, keep[:, -q_len:])
    k_u, _, cu_k, max_k = unpad(k, keep)
    v_u = v.reshape(-1, *v.shape[2:]).index_select(0, torch.nonzero(keep.flatten()).flatten())
    out = call(q_u, k_u, v_u, cu_q, cu_k, max_q, max_k)
    return repad(out, q_index, batch, q_len)


# ---------------------------------------------------------------------------------------------
# The three libraries


def flash_attn_1_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    fa = import_flash_attn(1)
    is_causal = causal(module, is_causal)
    q_len, k_len = query.shape[-2], key.shape[-2]
    if is_causal and q_len != k_len:
        # flash-attn 1.x aligns the causal mask top-left; one new token sees every cached key.
        if q_len != 1:
            raise AttentionError(
                "flash-attn 1.x cannot run a causal call with fewer queries than keys (other than one); use sdpa"
            )
        is_causal = False
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return fa.flash_attn_unpadded_func(
            q, k, v, cu_q, cu_k, max_q, max_k, dropout, softmax_scale=scaling, causal=is_causal
        )

    return varlen_call(call, q, k, v, attention_mask), None


def flash_attn_2_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    fa = import_flash_attn(2)
    is_causal = causal(module, is_causal)
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    if attention_mask is None:
        return fa.flash_attn_func(q, k, v, dropout, softmax_scale=scaling, causal=is_causal), None

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return fa.flash_attn_varlen_func(
            q, k, v, cu_q, cu_k, max_q, max_k, dropout, softmax_scale=scaling, causal=is_causal
        )

    return varlen_call(call, q, k, v, attention_mask), None


def _first(result):
    return result[0] if isinstance(result, tuple) else result


# flash-attn 4 without a mask, under torch.compile, as two custom operators, so that the compiler keeps each
# call whole in its graph: otherwise it traces into the CuTe DSL's Python and breaks the graph at every layer
# (GPT-2 124M with flash-attn 4 under torch.compile, before: 437.7k tokens/s against cuDNN's 546.4k on an
# H100; after: 547.1k, results/h100/speed.json at commit e979544; with q, k, v packed, 2-3% faster than
# cuDNN, results/h100/speed/first-strong-baseline-run/). Not in eager mode: called through the
# operators there, the wrapper ran at 0.789 of flash-attn 4 called directly (seq 4096, head dim 128,
# results/h100/notebooks/hopper/04_benchmark.ipynb); through flash-attn 4's own autograd function it had
# run at 0.992 (results/h100/attention.json). Outputs are contiguous, as the fake implementations say.


def _fa4_fwd(q, k, v, scale, is_causal):
    from flash_attn.cute import interface

    out, lse = interface._flash_attn_fwd(q, k, v, softmax_scale=scale, causal=is_causal, return_lse=True)[:2]
    return out.contiguous(), lse.contiguous()


def _fa4_bwd(grad_out, q, k, v, out, lse, scale, is_causal, **into):
    """dq, dk, dv (into the tensors `into` names, if any: dq=, dk=, dv=, any strides)."""
    from flash_attn.cute import interface

    return interface._flash_attn_bwd(q, k, v, out, grad_out.contiguous(), lse, scale, is_causal, **into)[:3]


@torch.library.custom_op("vanilla_flash::flash_attn_4_forward", mutates_args=())
def fa4_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None, is_causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, seq, heads, head_dim) q, k, v -> the output (same layout) and the log-sum-exp (batch, heads, seq)."""
    return _fa4_fwd(q, k, v, scale, is_causal)


@fa4_forward.register_fake
def _(q, k, v, scale, is_causal):
    batch, seq, heads, _ = q.shape
    return q.new_empty(batch, seq, heads, v.shape[-1]), q.new_empty(batch, heads, seq, dtype=torch.float32)


@torch.library.custom_op("vanilla_flash::flash_attn_4_backward", mutates_args=())
def fa4_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float | None,
    is_causal: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(grad.contiguous() for grad in _fa4_bwd(grad_out, q, k, v, out, lse, scale, is_causal))


@fa4_backward.register_fake
def _(grad_out, q, k, v, out, lse, scale, is_causal):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _fa4_save(ctx, inputs, output):
    q, k, v, ctx.scale, ctx.is_causal = inputs
    ctx.save_for_backward(q, k, v, *output)


def _fa4_backward(ctx, grad_out, _grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    return (*fa4_backward(grad_out, q, k, v, out, lse, ctx.scale, ctx.is_causal), None, None)


fa4_forward.register_autograd(_fa4_backward, setup_context=_fa4_save)


# The same for q, k and v packed in one (batch, seq, 3, heads, head_dim) tensor, as one matmul makes them
# (`registry.attend_packed`): the backward writes dq, dk and dv into one tensor of that layout, so no copy
# stacks the three gradients for that matmul's backward (a copy of the whole packed tensor per layer).


@torch.library.custom_op("vanilla_flash::flash_attn_4_packed_forward", mutates_args=())
def fa4_packed_forward(qkv: torch.Tensor, scale: float | None, is_causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _fa4_fwd(*qkv.unbind(2), scale, is_causal)


@fa4_packed_forward.register_fake
def _(qkv, scale, is_causal):
    batch, seq, _, heads, head_dim = qkv.shape
    return qkv.new_empty(batch, seq, heads, head_dim), qkv.new_empty(batch, heads, seq, dtype=torch.float32)


@torch.library.custom_op("vanilla_flash::flash_attn_4_packed_backward", mutates_args=())
def fa4_packed_backward(
    grad_out: torch.Tensor,
    qkv: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float | None,
    is_causal: bool,
) -> torch.Tensor:
    grad = qkv.new_empty(qkv.shape)
    dq, dk, dv = grad.unbind(2)
    _fa4_bwd(grad_out, *qkv.unbind(2), out, lse, scale, is_causal, dq=dq, dk=dk, dv=dv)
    return grad


@fa4_packed_backward.register_fake
def _(grad_out, qkv, out, lse, scale, is_causal):
    return qkv.new_empty(qkv.shape)


def _fa4_packed_save(ctx, inputs, output):
    qkv, ctx.scale, ctx.is_causal = inputs
    ctx.save_for_backward(qkv, *output)


def _fa4_packed_backward(ctx, grad_out, _grad_lse):
    qkv, out, lse = ctx.saved_tensors
    return fa4_packed_backward(grad_out, qkv, out, lse, ctx.scale, ctx.is_causal), None, None


fa4_packed_forward.register_autograd(_fa4_packed_backward, setup_context=_fa4_packed_save)


def flash_attn_4_packed(qkv: torch.Tensor, scale: float | None, is_causal: bool) -> torch.Tensor:
    """flash-attn 4 on packed (batch, seq, 3, heads, head_dim) q, k, v: (batch, seq, heads, head_dim). Under
    torch.compile through the packed custom operators; in eager mode flash-attn 4's own function on views."""
    fa = import_flash_attn(4)
    if torch.compiler.is_compiling():
        return fa4_packed_forward(qkv, scale, is_causal)[0]
    q, k, v = qkv.unbind(2)
    return _first(fa.flash_attn_func(q, k, v, softmax_scale=scale, causal=is_causal))


def flash_attn_4_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    fa = import_flash_attn(4)
    is_causal = causal(module, is_causal)
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    if attention_mask is None and torch.compiler.is_compiling():
        return fa4_forward(q, k, v, scaling, is_causal)[0], None
    if attention_mask is None:
        return _first(fa.flash_attn_func(q, k, v, softmax_scale=scaling, causal=is_causal)), None

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return _first(
            fa.flash_attn_varlen_func(
                q,
                k,
                v,
                cu_seqlens_q=cu_q,
                cu_seqlens_k=cu_k,
                max_seqlen_q=max_q,
                max_seqlen_k=max_k,
                softmax_scale=scaling,
                causal=is_causal,
            )
        )

    return varlen_call(call, q, k, v, attention_mask), None
