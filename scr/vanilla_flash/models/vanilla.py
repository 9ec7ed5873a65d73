"""GPT-2 written compactly for speed (`model_impl: vanilla`), in transformers' own weight layout.

The same parameters under the same names and shapes as transformers' `GPT2LMHeadModel`
(`transformer.h.0.attn.c_attn.weight` is (in, out), as its Conv1D keeps it), so a checkpoint is a
transformers checkpoint: `save_pretrained` writes one that `GPT2LMHeadModel.from_pretrained` loads,
`from_hf` takes one, and `as_hf` is a transformers model over the very same tensors (no copy), which
is how `generate` works. What differs is only the forward pass, written for torch.compile: one
matmul for q, k and v, attention through `vanilla_flash.attention.registry` on the three packed as that
matmul makes them (`attend_packed`: flash-attn 4 gives their gradient back packed, no copy), causal, no
mask tensors, no attention-interface dispatch, the head tied to the embedding, and the loss either as transformers
computes it (`loss="full"`: the logits of every position, in float32) or `loss="chunked"`: a few
thousand positions at a time, with each chunk's gradients (for the hidden states and for the tied
head) worked out in the forward pass while that chunk's logits exist, so the (batch x seq x vocab)
float32 logits never exist at once and none are recomputed: the backward pass only scales the
gradients it was left (the idea behind fused linear + cross-entropy kernels such as Liger's);
`loss="chunked_triton"` is the same with each chunk's softmax step as one Triton kernel
(`vanilla_flash.models.loss_kernel`).
Under bf16 autocast, `residual="bf16"` carries the residual stream between the blocks in bfloat16
instead of float32 (as transformers does), which halves what LayerNorm and the residual adds read
and write, at the price of slightly different numbers.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.modeling_outputs import CausalLMOutput

from vanilla_flash.attention import registry as attention
from vanilla_flash.errors import ConfigError
from vanilla_flash.models import float8 as float8_matmuls
from vanilla_flash.models import gpt2

try:  # the Triton kernel of `loss: chunked_triton`; Colab's T4 runtime and a CPU may have no Triton
    from vanilla_flash.models import loss_kernel
except ImportError:
    loss_kernel = None

LOSSES = ("full", "chunked", "chunked_triton")
RESIDUALS = ("float32", "bf16")
BF16 = torch.bfloat16
# positions per chunk of the chunked loss: 16384 x 50304 float32 logits are 3.3 GB; on the H200 16384
# ran 0.6% faster than 4096, with less memory at its peak (results/h200/speed/speed_profile.json)
CHUNK_TOKENS = 16384


class Affine(nn.Module):
    """transformers' Conv1D: y = x @ weight + bias, with weight stored (in, out); the matmul in float8
    where `float8_matmul` is set (`models.float8.matmul`)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.float8_matmul: float8_matmuls.Float8Matmul | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.float8_matmul is not None:
            return self.float8_matmul(self.bias, x, self.weight)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.n_head, self.cfg = cfg.n_head, cfg
        self.c_attn = Affine(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = Affine(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        qkv = self.c_attn(x).view(b, t, 3, self.n_head, e // self.n_head)
        p = self.cfg.attn_pdrop if self.training else 0.0
        y = attention.attend_packed(self.cfg._attn_implementation, qkv, causal=True, dropout=p)  # (b, t, h, d)
        return F.dropout(self.c_proj(y.reshape(b, t, e)), self.cfg.resid_pdrop, self.training)


class MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.c_fc = Affine(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Affine(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.resid_pdrop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class VanillaGPT(nn.Module):
    """GPT-2 with transformers' parameter names and shapes and a compact forward pass (see the
    module's docstring). `forward(input_ids, labels)` returns `.loss` and, with the full loss,
    `.logits`, as `GPT2LMHeadModel` does."""

    def __init__(self, cfg: GPT2Config, loss: str = "full", residual: str = "float32", float8: str | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r} is not one of: {', '.join(LOSSES)}")
        if residual not in RESIDUALS:
            raise ValueError(f"residual {residual!r} is not one of: {', '.join(RESIDUALS)}")
        self.config, self.loss, self.residual = cfg, loss, residual
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.transformer.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.transformer.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.transformer.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        self.set_float8(float8)
        self.reset_parameters()

    def set_float8(self, recipe: str | None) -> None:
        """The blocks' matmuls in float8 by `recipe` (`models.float8`), or in bf16 (None)."""
        self.float8 = recipe
        matmul = float8_matmuls.matmul(recipe)
        for module in self.transformer.h.modules():
            if isinstance(module, Affine):
                module.float8_matmul = matmul

    def reset_parameters(self) -> None:
        """GPT-2's initialisation, as transformers does it: N(0, 0.02) weights, the residual
        projections' scaled by 1/sqrt(2 * layers), zero biases, LayerNorms at one and zero."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, Affine | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
            if isinstance(module, Affine):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.transformer.h:
            for projection in (block.attn.c_proj, block.mlp.c_proj):
                nn.init.normal_(projection.weight, 0.0, std / math.sqrt(2 * self.config.n_layer))

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(pos)
        x = F.dropout(x, self.config.embd_pdrop, self.training)
        device = x.device.type
        if self.residual == "bf16" and torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == BF16:
            x = x.to(BF16)  # the blocks' outputs are bf16 under autocast: the sums stay bf16
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **_) -> CausalLMOutput:
        h = self.hidden(input_ids)
        if labels is None:
            return CausalLMOutput(logits=self.lm_head(h), loss=None)
        targets = labels[:, 1:].reshape(-1)
        if self.loss == "full":
            logits = self.lm_head(h)
            loss = F.cross_entropy(logits[:, :-1].reshape(targets.numel(), -1).float(), targets, ignore_index=-100)
            return CausalLMOutput(logits=logits, loss=loss)
        h = h[:, :-1].reshape(targets.numel(), -1)
        if torch.is_grad_enabled():
            total = ChunkedLinearCrossEntropy.apply(h, self.lm_head.weight, targets, self.loss == "chunked_triton")
        else:  # evaluation: the same sums, no gradients to work out
            total = chunked_cross_entropy(h, self.lm_head.weight, targets, gradients=False)[0]
        return CausalLMOutput(logits=None, loss=total / (targets != -100).sum().clamp(min=1))

    # --- transformers' format --------------------------------------------------------------------

    def as_hf(self) -> GPT2LMHeadModel:
        """A transformers `GPT2LMHeadModel` over this model's own tensors (no copy): for
        `generate`, `save_pretrained` and anything else of transformers'."""
        config = copy.copy(self.config)
        config._attn_implementation = gpt2.CONSTRUCT_WITH  # see vanilla_flash.models.gpt2: switched below
        with torch.device("meta"):
            hf = GPT2LMHeadModel(config)
        hf.load_state_dict(self.state_dict(keep_vars=True), assign=True)
        hf.tie_weights()
        gpt2.set_attention(hf, self.config._attn_implementation)
        gpt2.never_generate_padding(hf)
        return hf.train(self.training)

    def generate(self, *args, **kwargs) -> torch.Tensor:
        return self.as_hf().generate(*args, **kwargs)

    def save_pretrained(self, path, **kwargs) -> None:
        self.as_hf().save_pretrained(path, **kwargs)

    @classmethod
    def from_hf(
        cls, hf: GPT2LMHeadModel, loss: str = "full", residual: str = "float32", float8: str | None = None
    ) -> VanillaGPT:
        """The same weights as transformers' `hf`, in this implementation (a copy)."""
        model = cls(hf.config, loss=loss, residual=residual, float8=float8)
        model.load_state_dict(hf.state_dict())
        return model.to(hf.device)


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, gradients: bool = True):
    """One chunk's per-row losses (float32) of `logits` against `targets` (-100: not a target, zero
    loss and gradient) and, with `gradients`, d loss / d logits = softmax - one_hot(target), in the
    logits' dtype. `vanilla_flash.models.loss_kernel` computes the same in one Triton kernel."""
    x = logits.float()
    lse = torch.logsumexp(x, dim=-1)
    real = targets != -100
    index = torch.where(real, targets, 0)
    losses = torch.where(real, lse - x.gather(1, index[:, None]).squeeze(1), 0.0)
    if not gradients:
        return losses, None
    is_target = torch.arange(x.shape[1], device=x.device) == index[:, None]
    return losses, ((torch.exp(x - lse[:, None]) - is_target.float()) * real[:, None]).to(logits.dtype)


def _softmax_kernel(device: torch.device):
    """`loss_kernel.softmax_cross_entropy_grad`, or a clear error where it cannot run."""
    if loss_kernel is None:
        raise ConfigError("loss: 'chunked_triton' needs Triton, which this Python cannot import; use loss: chunked")
    if not loss_kernel.usable(device):
        raise ConfigError(f"loss: 'chunked_triton' needs a CUDA GPU, not {device.type}; use loss: chunked")
    return loss_kernel.softmax_cross_entropy_grad


def chunked_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, gradients: bool = True, kernel: bool = False
):
    """The summed cross-entropy of the logits `h @ weight.T` against `targets` (-100: not a target),
    CHUNK_TOKENS rows at a time; with `gradients`, also its gradients for `h` and for `weight`,
    from each chunk's softmax while its logits exist (`softmax_cross_entropy`, or with `kernel` the
    Triton kernel of `vanilla_flash.models.loss_kernel`)."""
    softmax = _softmax_kernel(h.device) if kernel and gradients else softmax_cross_entropy
    total = h.new_zeros((), dtype=torch.float32)
    grad_h = torch.zeros_like(h) if gradients else None
    grad_weight = None
    for start in range(0, h.shape[0], CHUNK_TOKENS):
        end = min(start + CHUNK_TOKENS, h.shape[0])
        chunk, target = h[start:end], targets[start:end]
        product = chunk @ weight.t()  # bfloat16 under autocast: the gradients' matmuls take that type too
        losses, grad_logits = softmax(product, target) if gradients else softmax_cross_entropy(product, target, False)
        total = total + losses.sum()
        if gradients:
            grad_h[start:end] = grad_logits @ weight
            grad_weight = _add_product(grad_weight, grad_logits.t(), chunk, weight.dtype)
    if gradients and grad_weight is None:  # no positions
        grad_weight = torch.zeros_like(weight)
    return total, grad_h, grad_weight


def _add_product(total: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, weight_dtype: torch.dtype):
    """`total + a @ b` (`a @ b` where `total` is None). Where the product comes in the weight's own type
    (bf16 or float32 weights, no autocast), the matmul adds it in place, in float32 inside and rounded once a
    chunk, with no pass of its own over the sum; float32 weights under autocast get a bfloat16 product,
    summed in float32."""
    if total is not None and total.dtype == a.dtype == weight_dtype:
        return total.addmm_(a, b)
    product = a @ b
    if product.dtype != weight_dtype:
        product = product.float()
    return product if total is None else total + product


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """`chunked_cross_entropy` with its gradients computed in the forward pass and only scaled by
    the incoming gradient in the backward pass: no chunk's logits are kept, none recomputed."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, kernel: bool) -> torch.Tensor:
        total, grad_h, grad_weight = chunked_cross_entropy(h, weight, targets, kernel=kernel)
        ctx.save_for_backward(grad_h, grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        grad_h, grad_weight = ctx.saved_tensors
        return grad_h * grad_total, grad_weight * grad_total, None, None


def build(
    size: str = "tiny",
    *,
    attn: str = "auto",
    loss: str = "full",
    residual: str = "float32",
    float8: str | None = None,
    **overrides,
) -> VanillaGPT:
    """A freshly initialised GPT-2 of `size` in this implementation, with attention backend `attn`, loss `loss`,
    residual stream `residual` and the blocks' matmuls in float8 by `float8`: the very weights
    `vanilla_flash.models.gpt2.build` would give under the same seed (it initialises them, this model takes them
    over), so a run with `model_impl: vanilla` starts where the same run with `model_impl: hf` starts."""
    hf = gpt2.build(size, attn=attn, **overrides)
    with torch.device("meta"):
        model = VanillaGPT(hf.config, loss=loss, residual=residual, float8=float8)
    model.load_state_dict(hf.state_dict(keep_vars=True), assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # tied again (assign replaced both)
    return model
