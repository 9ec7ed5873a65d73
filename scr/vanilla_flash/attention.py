"""One registry of attention backends, one calling convention.

Every backend is a function with the calling convention of transformers' ``AttentionInterface``::

    out, _ = forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None)

with ``query/key/value`` shaped (batch, heads, seq, head_dim) and ``out`` shaped (batch, seq, heads,
head_dim). `register()` puts each one into transformers under its name, so
``GPT2LMHeadModel(config)`` with ``config._attn_implementation = "flash_attn_1"`` runs flash-attn
1.x, and `attend()` calls the same functions on bare tensors (tests, checks, benchmarks).

Backends (`names()`): ``eager`` and ``sdpa`` are transformers' own; ``sdpa_math``,
``sdpa_efficient``, ``sdpa_flash`` and ``sdpa_cudnn`` force one PyTorch SDPA kernel;
``flash_attn_1``, ``flash_attn_2`` and ``flash_attn_4`` call the flash-attn libraries, imported only
when first used; ``auto`` picks, per call, the fastest backend that runs on this GPU with this dtype
and head dim (`pick()`, whose rule is written next to the measurements it rests on).

Every backend honours causal masking, the softmax scale and attention dropout, or refuses the call
with an `AttentionError` that says what to do. Causal masks are aligned bottom-right (query ``i``
of ``q`` sees keys up to ``i + k - q``), which is what decoding with a KV cache needs. Padding masks
reach flash-attn as variable-length batches (``cu_seqlens``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from vanilla_flash.env import Machine, dist_version

HALF = (torch.float16, torch.bfloat16)
NOTEBOOKS = {1: "notebooks/flash_attn_1", 2: "notebooks/flash_attn_2", 4: "notebooks/flash_attn_4"}
PRECISION_HINT = (
    "Run the model under mixed precision instead (Lightning precision='16-mixed' on a T4, "
    "'bf16-mixed' on Ampere or newer; `vanilla_flash.precision.policy()` picks it) rather than "
    "casting tensors by hand: casting the batch casts the token ids too and breaks the embedding."
)


class AttentionError(RuntimeError):
    """An attention backend cannot run this call here; the message says what to do instead."""


@dataclass(frozen=True)
class Backend:
    """What a backend needs; `why_not()` turns this into one sentence a user can act on."""

    name: str
    summary: str
    forward: Callable
    mask: str  # which transformers mask builder feeds it: "sdpa" or "flash"
    cuda_only: bool = False
    min_cc: float = 0.0
    max_cc: float = 99.0
    half_only: bool = False  # fp16/bf16 inputs only (on CUDA)
    max_head_dim: int | None = None
    dropout: bool = True
    library: int | None = None  # flash-attn major version it needs
    builtin: bool = False  # transformers' own name, not registered by us


_REGISTRY: dict[str, Backend] = {}


def _add(backend: Backend) -> None:
    _REGISTRY[backend.name] = backend


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AttentionError(f"unknown attention backend {name!r}; choose one of: {', '.join(names())}") from None


# ---------------------------------------------------------------------------------------------
# Can it run here?


def _installed(major: int) -> str | None:
    """Installed version of flash-attn `major` (1, 2 or 4), or None."""
    if major == 4:
        return dist_version("flash-attn-4")
    version = dist_version("flash-attn") or dist_version("flash_attn")
    return version if version and int(version.split(".")[0]) == major else None


def _install_hint(major: int, machine: Machine) -> str:
    if major == 1:
        return (
            "flash-attn 1.x is not installed: build it from source with the "
            f"{NOTEBOOKS[1]} notebooks (about 4 minutes on 16 cores, 15 on Colab's 2)"
        )
    if major == 2:
        return (
            "flash-attn 2.x is not installed: install the prebuilt wheel that matches this torch "
            f"(the {NOTEBOOKS[2]} notebooks find it)"
        )
    return f"flash-attn-4 is not installed: `pip install flash-attn-4` (see the {NOTEBOOKS[4]} notebooks)"


def why_not(
    name: str,
    machine: Machine,
    *,
    dtype: torch.dtype | str | None = None,
    head_dim: int | None = None,
    dropout: bool = False,
    training: bool = True,
) -> str | None:
    """None if backend `name` can run on `machine` (with this dtype/head dim/dropout), else why not."""
    b = get(name)
    if name == "auto":
        return None
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    on_gpu = machine.device == "cuda"
    if b.cuda_only and not on_gpu:
        return f"{name} needs a CUDA GPU; on CPU use sdpa (or eager)"
    if on_gpu and machine.cc < b.min_cc:
        alternatives = "flash_attn_1 or sdpa_efficient" if machine.cc >= 7.5 else "sdpa_efficient or sdpa"
        return (
            f"{name} needs compute capability >= {b.min_cc} ({_arch_name(b.min_cc)} or newer); "
            f"this {machine.gpu_name} is {machine.cc}: use {alternatives}"
        )
    if on_gpu and machine.cc > b.max_cc:
        return f"{name} supports compute capability up to {b.max_cc}; this {machine.gpu_name} is {machine.cc}"
    if name == "sdpa_cudnn" and on_gpu and (machine.cudnn or 0) < 90000:
        return "sdpa_cudnn needs cuDNN >= 9 in this torch build; use sdpa_flash or sdpa"
    if b.library is not None:
        version = machine.flash_attn_4 if b.library == 4 else machine.flash_attn
        if not version or (b.library != 4 and int(version.split(".")[0]) != b.library):
            return _install_hint(b.library, machine)
    if dtype is not None:
        if on_gpu and b.half_only and dtype not in HALF:
            return f"{name} takes float16/bfloat16 inputs, not {_dtype_name(dtype)}. {PRECISION_HINT}"
        if on_gpu and dtype == torch.bfloat16 and machine.cc < 8.0:
            return f"bfloat16 needs compute capability >= 8.0; this {machine.gpu_name} is {machine.cc}: use float16"
        if not on_gpu and name == "sdpa_flash" and dtype == torch.float16:
            return "sdpa_flash on CPU takes float32 or bfloat16; use sdpa"
    if head_dim is not None and b.max_head_dim and head_dim > b.max_head_dim:
        return f"{name} supports head dims up to {b.max_head_dim}, not {head_dim}; use sdpa"
    if head_dim is not None and b.library is not None and head_dim % 8:
        return f"{name} needs a head dim that is a multiple of 8, not {head_dim}; use sdpa"
    if name == "flash_attn_1" and training and on_gpu and machine.cc < 8.0 and (head_dim or 0) > 64:
        return "flash-attn 1.x backward with head dim > 64 needs compute capability >= 8.0; use sdpa_efficient"
    if dropout and not b.dropout:
        return f"{name} has no attention dropout; set the model's attn_pdrop=0 or use sdpa_cudnn/sdpa_flash"
    if dropout and name == "sdpa_flash" and not on_gpu:
        return "PyTorch's CPU flash kernel has no dropout; use sdpa or set attn_pdrop=0"
    return None


def _arch_name(cc: float) -> str:
    return {7.5: "Turing", 8.0: "Ampere", 9.0: "Hopper"}.get(cc, f"sm{int(cc * 10)}")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------
# Which one is fastest here?
#
# The rule below rests on `python -m vanilla_flash bench attention` on one H100 80GB (torch
# 2.11+cu130, cuDNN 9.19, flash-attn-4 4.0.0b36, bf16, the FlashAttention-2 paper's setting: 16k
# tokens per batch, hidden 2048; results/h100/attention.json). fwd+bwd TFLOP/s:
#
#   head dim 64, causal     seq 1024   seq 4096   seq 16384
#   sdpa_efficient               84        100        106
#   sdpa_flash (= FA2)          160        239        281
#   sdpa_cudnn                  225        362        419
#   flash_attn_1                 94        124        154
#   flash_attn_4                267        434        516
#   head dim 128, non-causal, seq 8192: efficient 146, flash 310, cuDNN 533, flash_attn_4 618
#
# flash-attn 4 was the fastest at 23, 22 and 24 of the 24 points in three runs (head dim 64 and
# 128, causal or not, seq 512 to 16k; plain `sdpa` won the rest, at seq 512), cuDNN mostly at
# 81-99% of it; so on Hopper flash-attn 4 comes first where it is installed. Under torch.compile,
# SDPA's kernels come first: the compiler traces them into its graph, while a call into another
# library is opaque to it. FA2 (sdpa_flash or the flash-attn 2 library) is the best Ampere has; a
# Turing T4 has only flash-attn 1.x and SDPA's memory-efficient kernel (SDPA flash and cuDNN need sm80).
# On CPU, SDPA picks its own kernel.


def preference(machine: Machine, dtype: torch.dtype | str, compiled: bool = False) -> list[str]:
    """Backends from fastest to slowest for this kind of machine and dtype (`compiled`: inside
    torch.compile)."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if machine.device != "cuda" or dtype not in HALF:
        return ["sdpa"]
    cc = machine.cc
    if cc < 8.0:
        return ["flash_attn_1", "sdpa_efficient", "sdpa"]
    if cc < 9.0:
        return ["flash_attn_2", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "sdpa"]
    if compiled:
        return ["sdpa_cudnn", "sdpa_flash", "flash_attn_4", "flash_attn_2", "sdpa"]
    return ["flash_attn_4", "sdpa_cudnn", "sdpa_flash", "flash_attn_2", "sdpa"]


def pick(
    machine: Machine,
    dtype: torch.dtype | str = "bfloat16",
    head_dim: int = 64,
    seq_len: int | None = None,
    dropout: bool = False,
    compiled: bool = False,
) -> str:
    """The fastest backend that runs on `machine` for inputs of this dtype and head dim (`seq_len`
    is taken for the record: no measured winner has depended on it so far)."""
    for name in preference(machine, dtype, compiled):
        if why_not(name, machine, dtype=dtype, head_dim=head_dim, dropout=dropout) is None:
            return name
    return "sdpa"


@functools.cache
def _this_machine() -> Machine:
    from vanilla_flash import env

    return env.probe()


@functools.lru_cache(maxsize=256)
def _auto_choice(dtype: torch.dtype, head_dim: int, dropout: bool, on_gpu: bool, compiled: bool) -> str:
    machine = _this_machine() if on_gpu else Machine()
    return pick(machine, dtype, head_dim, dropout=dropout, compiled=compiled)


# ---------------------------------------------------------------------------------------------
# Checks made on every call (cheap: attribute reads and cached look-ups)


@functools.lru_cache(maxsize=16)
def _capability(index: int) -> float:
    major, minor = torch.cuda.get_device_capability(index)
    return major + minor / 10


def _check_call(b: Backend, q: torch.Tensor, dropout: float) -> None:
    if b.cuda_only and not q.is_cuda:
        raise AttentionError(
            f"{b.name} runs on CUDA GPUs only, but the tensors are on {q.device}. Move the model to "
            "the GPU (Lightning: accelerator='gpu') or use attention 'sdpa' on CPU."
        )
    if q.is_cuda and not torch.compiler.is_compiling():  # checked in eager calls; compiled graphs reuse them
        cc = _capability(q.device.index or 0)
        if cc < b.min_cc:
            raise AttentionError(why_not(b.name, _this_machine()) or f"{b.name} needs sm{int(b.min_cc * 10)}")
        if b.half_only and q.dtype not in HALF:
            raise AttentionError(
                f"{b.name} takes float16/bfloat16 tensors, but got {_dtype_name(q.dtype)}. {PRECISION_HINT}"
            )
        if q.dtype == torch.bfloat16 and cc < 8.0:
            raise AttentionError(
                f"bfloat16 needs compute capability >= 8.0 and this GPU is {cc}: train with precision='16-mixed'."
            )
    head_dim = q.shape[-1]
    if b.max_head_dim and head_dim > b.max_head_dim:
        raise AttentionError(f"{b.name} supports head dims up to {b.max_head_dim}, not {head_dim}; use sdpa.")
    if dropout and not b.dropout:
        raise AttentionError(
            f"{b.name} has no attention dropout, but this call asks for p={dropout}: set the model's "
            "attn_pdrop=0 (our pretraining configs do) or use sdpa_cudnn / sdpa_flash."
        )


def _causal(module, is_causal: bool | None) -> bool:
    return bool(is_causal if is_causal is not None else getattr(module, "is_causal", True))


# ---------------------------------------------------------------------------------------------
# eager and PyTorch SDPA


def _eager_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    """softmax(Q K^T * scale + mask) V, written out: the reference every other backend must match."""
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif _causal(module, is_causal) and query.shape[-2] > 1:
        q_len, k_len = query.shape[-2], key.shape[-2]
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return torch.matmul(probs, value).transpose(1, 2), None


def _sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kw
    )


def _forced_sdpa(kernel_name: str, backend_name: str) -> Callable:
    def forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        _check_call(_REGISTRY[backend_name], query, dropout)
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
                return _sdpa_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kw)
        except RuntimeError as err:
            if "No available kernel" not in str(err) and "No viable backend" not in str(err):
                raise
            raise AttentionError(
                f"PyTorch SDPA could not run its {kernel_name} kernel for this call (device "
                f"{query.device}, dtype {_dtype_name(query.dtype)}, head dim {query.shape[-1]}, dropout "
                f"{dropout}, mask {'yes' if attention_mask is not None else 'no'}); PyTorch's warnings "
                "above say which condition failed. Use attention 'sdpa' to let PyTorch choose."
            ) from err

    forward.__name__ = f"{backend_name}_forward"
    return forward


# ---------------------------------------------------------------------------------------------
# flash-attn 1.x, 2.x and 4: imported on first use


def _import_flash_attn(major: int):
    """The flash-attn module for `major`, or an AttentionError that says how to get it."""
    try:
        if major == 4:
            import flash_attn.cute as module

            return module
        from flash_attn import flash_attn_interface as module
    except ImportError as err:
        installed = dist_version("flash-attn-4") if major == 4 else dist_version("flash-attn")
        if installed and "undefined symbol" in str(err):
            raise AttentionError(
                f"flash-attn {installed} is installed but was built for another torch/CUDA ({err}). "
                f"Reinstall the build that matches torch {torch.__version__} (see {NOTEBOOKS[major]})."
            ) from err
        if major == 4 and installed and dist_version("flash-attn"):
            raise AttentionError(
                f"flash-attn-4 {installed} is installed, but `flash_attn` resolves to flash-attn "
                f"{dist_version('flash-attn')}'s package, which hides flash_attn.cute: install both into "
                f"the same site-packages, or only the one this GPU needs ({err})"
            ) from err
        raise AttentionError(_install_hint(major, _this_machine()) + f" ({err})") from err
    has_v1_api = hasattr(module, "flash_attn_unpadded_func")
    if major == 1 and not has_v1_api:
        raise AttentionError("the installed flash-attn is 2.x; use backend flash_attn_2 (flash_attn_1 needs 1.x)")
    if major == 2 and has_v1_api:
        raise AttentionError("the installed flash-attn is 1.x; use backend flash_attn_1 (flash_attn_2 needs 2.x)")
    return module


def _cu_seqlens(batch: int, seq_len: int, device) -> torch.Tensor:
    return torch.arange(0, (batch + 1) * seq_len, seq_len, dtype=torch.int32, device=device)


def _unpad(x: torch.Tensor, keep: torch.Tensor):
    """(batch, seq, heads, dim) with keep[batch, seq] -> (tokens, heads, dim), indices, cu_seqlens, max len."""
    lengths = keep.sum(dim=-1, dtype=torch.int32)
    index = torch.nonzero(keep.flatten(), as_tuple=False).flatten()
    cu = F.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
    return x.reshape(-1, *x.shape[2:]).index_select(0, index), index, cu, int(lengths.max())


def _repad(x: torch.Tensor, index: torch.Tensor, batch: int, seq_len: int) -> torch.Tensor:
    out = x.new_zeros(batch * seq_len, *x.shape[1:])
    out[index] = x
    return out.view(batch, seq_len, *x.shape[1:])


def _varlen_call(call, q, k, v, attention_mask):
    """Run `call(q, k, v, cu_q, cu_k, max_q, max_k)` on (batch, seq, heads, dim) tensors, unpadding
    by the 2D padding mask (batch, kv_len) when there is one."""
    batch, q_len = q.shape[:2]
    k_len = k.shape[1]
    if attention_mask is None:
        cu_q = _cu_seqlens(batch, q_len, q.device)
        cu_k = cu_q if k_len == q_len else _cu_seqlens(batch, k_len, q.device)
        # with batch 1 the reshape is a strided view, not a copy: flash-attn 1.x then allocates a
        # strided output and its backward fails on `out.is_contiguous()` (seen at seq 16384 on an H100)
        q, k, v = (t.reshape(-1, *t.shape[2:]).contiguous() for t in (q, k, v))
        out = call(q, k, v, cu_q, cu_k, q_len, k_len)
        return out.view(batch, q_len, *out.shape[1:])
    keep = attention_mask.bool()
    q_u, q_index, cu_q, max_q = _unpad(q, keep[:, -q_len:])
    k_u, _, cu_k, max_k = _unpad(k, keep)
    v_u = v.reshape(-1, *v.shape[2:]).index_select(0, torch.nonzero(keep.flatten()).flatten())
    out = call(q_u, k_u, v_u, cu_q, cu_k, max_q, max_k)
    return _repad(out, q_index, batch, q_len)


def _flash_attn_1_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    b = _REGISTRY["flash_attn_1"]
    _check_call(b, query, dropout)
    if query.is_cuda and query.requires_grad and query.shape[-1] > 64 and _capability(query.device.index or 0) < 8:
        raise AttentionError("flash-attn 1.x backward with head dim > 64 needs compute capability >= 8.0")
    fa = _import_flash_attn(1)
    causal = _causal(module, is_causal)
    q_len, k_len = query.shape[-2], key.shape[-2]
    if causal and q_len != k_len:
        # flash-attn 1.x aligns the causal mask top-left; one new token sees every cached key.
        if q_len != 1:
            raise AttentionError(
                "flash-attn 1.x cannot run a causal call with fewer queries than keys (other than one); use sdpa"
            )
        causal = False
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return fa.flash_attn_unpadded_func(q, k, v, cu_q, cu_k, max_q, max_k, dropout, softmax_scale=scaling,
                                           causal=causal)  # fmt: skip

    return _varlen_call(call, q, k, v, attention_mask), None


def _flash_attn_2_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    _check_call(_REGISTRY["flash_attn_2"], query, dropout)
    fa = _import_flash_attn(2)
    causal = _causal(module, is_causal)
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    if attention_mask is None:
        return fa.flash_attn_func(q, k, v, dropout, softmax_scale=scaling, causal=causal), None

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return fa.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, dropout, softmax_scale=scaling,
                                         causal=causal)  # fmt: skip

    return _varlen_call(call, q, k, v, attention_mask), None


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def _flash_attn_4_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    _check_call(_REGISTRY["flash_attn_4"], query, dropout)
    fa = _import_flash_attn(4)
    causal = _causal(module, is_causal)
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    if attention_mask is None:
        return _first(fa.flash_attn_func(q, k, v, softmax_scale=scaling, causal=causal)), None

    def call(q, k, v, cu_q, cu_k, max_q, max_k):
        return _first(fa.flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k,
                                                max_seqlen_q=max_q, max_seqlen_k=max_k,
                                                softmax_scale=scaling, causal=causal))  # fmt: skip

    return _varlen_call(call, q, k, v, attention_mask), None


def _auto_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    if attention_mask is not None:
        name = "sdpa"  # a padded batch: SDPA takes any mask
    else:
        name = _auto_choice(query.dtype, query.shape[-1], bool(dropout), query.is_cuda,
                            torch.compiler.is_compiling())  # fmt: skip
    return _REGISTRY[name].forward(module, query, key, value, None, dropout, scaling, is_causal, **kw)


_add(Backend("eager", "transformers' eager attention: matmul, softmax, matmul", _eager_forward, "eager",
             builtin=True))  # fmt: skip
_add(Backend("sdpa", "PyTorch scaled_dot_product_attention, kernel chosen by PyTorch", _sdpa_forward, "sdpa",
             builtin=True))  # fmt: skip
_add(Backend("sdpa_math", "PyTorch SDPA, math kernel (reference, slow)", _forced_sdpa("MATH", "sdpa_math"), "sdpa"))
_add(Backend("sdpa_efficient", "PyTorch SDPA, memory-efficient kernel (xFormers)",
             _forced_sdpa("EFFICIENT_ATTENTION", "sdpa_efficient"), "sdpa", cuda_only=True, min_cc=5.0))  # fmt: skip
_add(Backend("sdpa_flash", "PyTorch SDPA, flash kernel (FlashAttention-2 inside PyTorch)",
             _forced_sdpa("FLASH_ATTENTION", "sdpa_flash"), "sdpa", min_cc=8.0, half_only=True,
             max_head_dim=256))  # fmt: skip
_add(Backend("sdpa_cudnn", "PyTorch SDPA, cuDNN kernel", _forced_sdpa("CUDNN_ATTENTION", "sdpa_cudnn"), "sdpa",
             cuda_only=True, min_cc=8.0, half_only=True, max_head_dim=128))  # fmt: skip
_add(Backend("flash_attn_1", "flash-attn 1.x (Turing and newer), variable-length API", _flash_attn_1_forward,
             "flash", cuda_only=True, min_cc=7.5, half_only=True, max_head_dim=128, library=1))  # fmt: skip
_add(Backend("flash_attn_2", "flash-attn 2.x (Ampere and newer)", _flash_attn_2_forward, "flash",
             cuda_only=True, min_cc=8.0, half_only=True, max_head_dim=256, library=2))  # fmt: skip
_add(Backend("flash_attn_4", "flash-attn 4, CuTe DSL (Hopper and Blackwell)", _flash_attn_4_forward, "flash",
             cuda_only=True, min_cc=9.0, max_cc=10.3, half_only=True, max_head_dim=128, dropout=False,
             library=4))  # fmt: skip
_add(Backend("auto", "the fastest backend that runs here, chosen per call", _auto_forward, "sdpa"))


# ---------------------------------------------------------------------------------------------
# transformers integration and a direct call


@functools.cache
def register() -> None:
    """Register every backend (and its mask builder) with transformers, once."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask, sdpa_mask

    masks = {"sdpa": sdpa_mask, "flash": flash_attention_mask}
    for b in _REGISTRY.values():
        if b.builtin:
            continue
        AttentionInterface.register(b.name, b.forward)
        AttentionMaskInterface.register(b.name, masks[b.mask])


def attend(
    name: str,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    causal: bool = True,
    scale: float | None = None,
    dropout: float = 0.0,
    padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention with backend `name` on (batch, heads, seq, head_dim) tensors.

    Returns (batch, seq, heads, head_dim). `padding_mask` is (batch, kv_len), True where a token is
    real; it reaches SDPA and eager as a boolean (batch, 1, q_len, kv_len) mask.
    """
    b = get(name)
    module = SimpleNamespace(is_causal=causal, training=dropout > 0)
    mask = padding_mask
    if padding_mask is not None and b.mask != "flash" and name != "auto":
        q_len, k_len = query.shape[-2], key.shape[-2]
        mask = padding_mask.bool()[:, None, None, :].expand(-1, 1, q_len, -1)
        if causal:
            mask = mask & torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    elif padding_mask is not None and name == "auto":
        return attend("sdpa", query, key, value, causal=causal, scale=scale, dropout=dropout,
                      padding_mask=padding_mask)  # fmt: skip
    with torch.autocast("cpu", enabled=False) if query.device.type == "cpu" else nullcontext():
        out, _ = b.forward(module, query, key, value, mask, dropout=dropout, scaling=scale, is_causal=causal)
    return out
