"""One registry of attention backends, one calling convention.

Every backend is a function with the calling convention of transformers' ``AttentionInterface``::

    out, _ = forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None)

with ``query/key/value`` shaped (batch, heads, seq, head_dim) and ``out`` shaped (batch, seq, heads,
head_dim). `register()` puts each one into transformers under its name, so
``GPT2LMHeadModel(config)`` with ``config._attn_implementation = "flash_attn_1"`` runs flash-attn
1.x, and `attend()` calls the same functions on bare tensors (tests, checks, benchmarks).
`attend_packed()` takes q, k and v as one matmul makes them, packed (batch, seq, 3, heads, head_dim): a
backend with a packed form (flash-attn 4) takes that tensor whole, every other one gets three views.

Backends (`names()`): ``eager`` and ``sdpa`` are transformers' own; ``sdpa_math``,
``sdpa_efficient``, ``sdpa_flash`` and ``sdpa_cudnn`` force one PyTorch SDPA kernel;
``flash_attn_1``, ``flash_attn_2`` and ``flash_attn_4`` call the flash-attn libraries
(`vanilla_flash.attention.flash_attn`, imported only when first used); ``auto`` picks, per call, the
fastest backend that runs on this GPU with this dtype and head dim (`pick()`, in the order of the
machine's row in `vanilla_flash.targets`, next to the measurements it rests on).

Every call is checked against its backend's limits first (`_check_call`: device, compute capability,
dtype, head dim, dropout, the installed build), so a user gets a sentence that says what to do, not a
kernel's assertion. Every backend honours causal masking, the softmax scale, attention dropout and
padding masks, or refuses the call with an `AttentionError`. Causal masks are aligned bottom-right (query ``i``
of ``q`` sees keys up to ``i + k - q``), which is what decoding with a KV cache needs. Padding masks
reach flash-attn as variable-length batches (``cu_seqlens``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from vanilla_flash import env, targets
from vanilla_flash.attention import flash_attn as fab
from vanilla_flash.attention.masks import causal_or_sdpa_mask
from vanilla_flash.attention.sdpa import dtype_name
from vanilla_flash.env import Machine
from vanilla_flash.errors import AttentionError, ConfigError

log = logging.getLogger(__name__)
HALF = (torch.float16, torch.bfloat16)
PRECISION_HINT = (
    "Run the model under mixed precision instead (Lightning precision='16-mixed' on a T4, "
    "'bf16-mixed' on Ampere or newer; `vanilla_flash.training.precision.policy()` picks it) rather than "
    "casting tensors by hand: casting the batch casts the token ids too and breaks the embedding."
)


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
    turing_backward_max_head_dim: int | None = None  # below sm80 its backward takes head dims up to this
    builtin: bool = False  # transformers' own name, not registered by us
    rules: Callable | None = None  # the backend's own rules: (machine, dtype, head_dim, training) -> why not
    packed: Callable | None = None  # (qkv, scale, is_causal) -> out, on packed q, k, v (`attend_packed`)


_REGISTRY: dict[str, Backend] = {}


def add(*args, **kwargs) -> None:
    """Register `Backend(*args, **kwargs)`."""
    backend = Backend(*args, **kwargs)
    _REGISTRY[backend.name] = backend


def names() -> list[str]:
    return list(_REGISTRY)


def check_name(name: str) -> None:
    """Refuse, in the words of the training parameters' check, a name that is no backend (the training
    config knows no backends: the command line, the notebooks and the run call this before any work)."""
    if name not in _REGISTRY:
        allowed = f"choose one of: {', '.join(names())}"
        raise ConfigError(f"training parameters that cannot be used:\n- attn: {name!r} is not allowed; {allowed}")


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AttentionError(f"unknown attention backend {name!r}; choose one of: {', '.join(names())}") from None


# ---------------------------------------------------------------------------------------------
# Can it run here?


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
        alternatives = "flash_attn_1 or sdpa_efficient" if machine.cc >= targets.T4.min_cc else "sdpa_efficient or sdpa"
        return (
            f"{name} needs compute capability >= {b.min_cc} ({targets.family_name(b.min_cc)} or newer); "
            f"this {machine.gpu_name} is {machine.cc}: use {alternatives}"
        )
    if on_gpu and machine.cc > b.max_cc:
        return f"{name} supports compute capability up to {b.max_cc}; this {machine.gpu_name} is {machine.cc}"
    if name == "sdpa_cudnn" and on_gpu and (machine.cudnn or 0) < 90000:
        return "sdpa_cudnn needs cuDNN >= 9 in this torch build; use sdpa_flash or sdpa"
    if dtype is not None:
        if on_gpu and b.half_only and dtype not in HALF:
            return f"{name} takes float16/bfloat16 inputs, not {dtype_name(dtype)}. {PRECISION_HINT}"
        if on_gpu and dtype == torch.bfloat16 and not targets.supports_bfloat16(machine.cc):
            return targets.no_bfloat16(machine.gpu_name, machine.cc)
        if not on_gpu and name == "sdpa_flash" and dtype == torch.float16:
            return "sdpa_flash on CPU takes float32 or bfloat16; use sdpa"
    if head_dim is not None and b.max_head_dim and head_dim > b.max_head_dim:
        return f"{name} supports head dims up to {b.max_head_dim}, not {head_dim}; use sdpa"
    multiple = _head_dim_multiple(b, dtype, machine)
    if head_dim is not None and head_dim % multiple:
        return f"{name} needs a head dim that is a multiple of {multiple}, not {head_dim}; use sdpa"
    if training and on_gpu and _turing_backward_too_wide(b, machine.cc, head_dim or 0):
        return _turing_backward_message(b)
    if dropout and not b.dropout:
        return f"{name} has no attention dropout; set the model's attn_pdrop=0 or use sdpa_cudnn/sdpa_flash"
    if dropout and name == "sdpa_flash" and not on_gpu:
        return "PyTorch's CPU flash kernel has no dropout; use sdpa or set attn_pdrop=0"
    if b.library is not None:  # installed, importable, and built with a kernel for this call
        return fab.why_not_here(b.library, machine, dtype, head_dim)
    return b.rules(machine, dtype, head_dim, training) if b.rules else None


def _head_dim_multiple(b: Backend, dtype: torch.dtype | None, machine: Machine) -> int:
    """What the head dim must divide by. The flash-attn libraries and SDPA's flash and cuDNN kernels
    take multiples of 8; SDPA's memory-efficient kernel on a GPU wants its matrix products aligned:
    8 for float16/bfloat16, 4 for float32 on sm80 and newer, anything on older GPUs (PyTorch's
    `minimum_gemm_alignment`, aten/src/ATen/native/transformers/cuda/sdp_utils.cpp)."""
    if b.library is not None or b.name in ("sdpa_flash", "sdpa_cudnn"):
        return 8
    if b.name == "sdpa_efficient" and machine.device == "cuda":
        if dtype in HALF or dtype is None:
            return 8
        return 4 if machine.cc >= targets.AMPERE.min_cc else 1
    return 1


def _turing_backward_too_wide(b: Backend, cc: float, head_dim: int) -> bool:
    limit = b.turing_backward_max_head_dim
    return limit is not None and cc < targets.AMPERE.min_cc and head_dim > limit


def _turing_backward_message(b: Backend) -> str:
    return (
        f"{b.name}'s backward with head dim > {b.turing_backward_max_head_dim} needs compute capability "
        f">= {targets.AMPERE.min_cc}; use sdpa_efficient"
    )


# ---------------------------------------------------------------------------------------------
# Which one is fastest here? The order is the machine's row of `vanilla_flash.targets`, whose
# docstring gives the measurements it rests on.


def preference(machine: Machine, dtype: torch.dtype | str, compiled: bool = False) -> list[str]:
    """Backends from fastest to slowest for this kind of machine and dtype (`compiled`: inside
    torch.compile)."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if machine.device != "cuda" or dtype not in HALF:
        return ["sdpa"]
    target = machine.target
    return list(target.attention_compiled if compiled else target.attention)


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
    return _pick_and_passed_over(machine, dtype, head_dim, dropout, compiled)[0]


def resolve(name: str, machine: Machine, *, dtype, head_dim: int, dropout=False, compiled=False) -> str:
    """The backend a run's attention calls go to: `name`, or the one `auto` picks for this machine,
    dtype and head dim. A name that is no backend, or one that cannot run here with these inputs, is
    refused with a `ConfigError` before any work."""
    check_name(name)
    reason = why_not(name, machine, dtype=dtype, head_dim=head_dim, dropout=dropout)
    if reason:
        raise ConfigError(f"attn: {name!r} cannot run here: {reason}")
    if name != "auto":
        return name
    return pick(machine, dtype, head_dim, dropout=dropout, compiled=compiled)


def _pick_and_passed_over(machine, dtype, head_dim, dropout, compiled) -> tuple[str, dict[str, str]]:
    """`pick`'s answer, and each faster backend it passed over with the reason."""
    passed_over = {}
    for name in preference(machine, dtype, compiled):
        reason = why_not(name, machine, dtype=dtype, head_dim=head_dim, dropout=dropout)
        if reason is None:
            return name, passed_over
        passed_over[name] = reason
    return "sdpa", passed_over


@functools.cache
def _this_machine() -> Machine:
    return env.probe()


_SAID_BROKEN: set[str] = set()  # the broken libraries `auto` has warned of in this process


@functools.lru_cache(maxsize=256)
def _auto_choice(dtype: torch.dtype, head_dim: int, dropout: bool, on_gpu: bool, compiled: bool) -> str:
    """`pick` for this machine, once per kind of call; a faster backend that is installed but broken
    is named once, in a warning, with the backend taken instead."""
    machine = _this_machine() if on_gpu else Machine()
    chosen, passed_over = _pick_and_passed_over(machine, dtype, head_dim, dropout, compiled)
    for name, reason in passed_over.items():
        if "cannot be imported" in reason and name not in _SAID_BROKEN:
            _SAID_BROKEN.add(name)
            log.warning("attention auto: %s cannot run here (%s); using %s", name, reason, chosen)
    return chosen


# ---------------------------------------------------------------------------------------------
# Checks made on every call (cheap: attribute reads and cached look-ups)


@functools.lru_cache(maxsize=16)
def _capability(index: int) -> float:
    major, minor = torch.cuda.get_device_capability(index)
    return major + minor / 10


@functools.lru_cache(maxsize=64)
def _build_cannot(library: int, cc: float, dtype: torch.dtype, head_dim: int) -> str | None:
    """`fab.build_cannot` for this machine's flash-attn, once per kind of call."""
    return fab.build_cannot(library, _this_machine().flash_attn, cc, dtype, head_dim)


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
                f"{b.name} takes float16/bfloat16 tensors, but got {dtype_name(q.dtype)}. {PRECISION_HINT}"
            )
        if q.dtype == torch.bfloat16 and not targets.supports_bfloat16(cc):
            raise AttentionError(targets.no_bfloat16(None, cc) + ".")
        if getattr(q, "requires_grad", False) and _turing_backward_too_wide(b, cc, q.shape[-1]):
            raise AttentionError(_turing_backward_message(b))
        if b.library is not None and (reason := _build_cannot(b.library, cc, q.dtype, q.shape[-1])):
            raise AttentionError(f"{b.name} cannot run this call: {reason}")
    head_dim = q.shape[-1]
    if b.max_head_dim and head_dim > b.max_head_dim:
        raise AttentionError(f"{b.name} supports head dims up to {b.max_head_dim}, not {head_dim}; use sdpa.")
    if dropout and not b.dropout:
        raise AttentionError(
            f"{b.name} has no attention dropout, but this call asks for p={dropout}: set the model's "
            "attn_pdrop=0 (our pretraining configs do) or use sdpa_cudnn / sdpa_flash."
        )


def auto_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    if attention_mask is not None:
        name = "sdpa"  # a padded batch (or a cache): SDPA takes any mask, and gets it
    else:
        compiling = torch.compiler.is_compiling()
        name = _auto_choice(query.dtype, query.shape[-1], bool(dropout), query.is_cuda, compiling)
    return _run(_REGISTRY[name], module, query, key, value, attention_mask, dropout, scaling, is_causal, **kw)


def _run(b: Backend, module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    """Check the call against `b`'s limits, then run it."""
    if not b.builtin:
        _check_call(b, query, dropout)
    return b.forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kw
    )


def _checked(name: str) -> Callable:
    """The function transformers calls for backend `name`: the registry's entry, checked."""

    def forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        return _run(_REGISTRY[name], module, query, key, value, attention_mask, dropout, scaling, is_causal, **kw)

    forward.__name__ = f"{name}_forward"
    return forward


# ---------------------------------------------------------------------------------------------
# transformers integration and a direct call


@functools.cache
def register() -> None:
    """Register every backend (and its mask builder) with transformers, once."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    masks = {"sdpa": causal_or_sdpa_mask, "flash": flash_attention_mask}
    for b in _REGISTRY.values():
        if b.builtin:
            continue
        AttentionInterface.register(b.name, _checked(b.name))
        AttentionMaskInterface.register(b.name, masks[b.mask])


# What a backend reads of the module calling it (transformers passes its attention module): made
# once here, because torch.compile cannot trace the making of a SimpleNamespace (a graph break).
_CALLERS = {(c, t): SimpleNamespace(is_causal=c, training=t) for c in (True, False) for t in (True, False)}


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
    module = _CALLERS[causal, dropout > 0]
    mask = padding_mask
    if padding_mask is not None and b.mask != "flash" and name != "auto":
        q_len, k_len = query.shape[-2], key.shape[-2]
        mask = padding_mask.bool()[:, None, None, :].expand(-1, 1, q_len, -1)
        if causal:
            mask = mask & torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    elif padding_mask is not None and name == "auto":
        return attend("sdpa", query, key, value, causal=causal, scale=scale, dropout=dropout, padding_mask=padding_mask)
    with torch.autocast("cpu", enabled=False) if query.device.type == "cpu" else nullcontext():
        out, _ = _run(b, module, query, key, value, mask, dropout=dropout, scaling=scale, is_causal=causal)
    return out


def attend_packed(
    name: str, qkv: torch.Tensor, *, causal: bool = True, scale: float | None = None, dropout: float = 0.0
) -> torch.Tensor:
    """`attend` on q, k and v packed in one (batch, seq, 3, heads, head_dim) tensor, the layout one matmul
    for the three makes. A backend with a packed form (`Backend.packed`: flash-attn 4) takes the tensor
    whole, and under torch.compile its backward writes the three gradients into one tensor of that layout;
    for any other backend the three are views (batch, heads, seq, head_dim) and their gradients are stacked
    by a copy. Returns (batch, seq, heads, head_dim)."""
    b = get(name)
    query, key, value = qkv.permute(2, 0, 3, 1, 4)
    if b.packed is None or dropout:
        return attend(name, query, key, value, causal=causal, scale=scale, dropout=dropout)
    _check_call(b, query, dropout)
    return b.packed(qkv, scale, causal)
