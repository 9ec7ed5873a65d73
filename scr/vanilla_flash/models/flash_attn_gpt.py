"""flash-attn's own GPT model, next to Hugging Face GPT-2: the way the lab notes this project grew
from went (a student's attempt at flash-attn with GPT-2 on a Colab T4).

flash-attn 1.0.9 and 2.x ship `flash_attn.models.gpt.GPTLMHeadModel`, a GPT-2 written around their
kernels, with optional fused parts that each need an extra CUDA extension built from flash-attn's
`csrc/` (the student's Colab session died building them):

| option                 | what it fuses                               | extension module    |
|------------------------|---------------------------------------------|---------------------|
| `fused_bias_fc`        | linear layers with their bias (cuBLASLt)    | `fused_dense_lib`   |
| `fused_mlp`            | fc1 + GELU + fc2 of the MLP                 | `fused_dense_lib`   |
| `fused_dropout_add_ln` | dropout + residual add + LayerNorm          | `dropout_layer_norm`|
| `fused_xentropy`       | the cross-entropy loss                      | `xentropy_cuda_lib` |

`build()` makes that model for one of our GPT-2 sizes with the options asked for, refusing an
option whose extension is missing with a message that says how to build it. `FlashAttnGPT` gives it
the small interface the training code needs (`loss` from `labels`, `generate`). `from_hf()` loads a
Hugging Face GPT-2's weights into it through flash-attn's own key remapping, so both
implementations can be compared on the same weights (`compare_logits()`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import torch
from torch import nn

from vanilla_flash.builds import fused
from vanilla_flash.config import SIZES
from vanilla_flash.errors import FlashAttnModelError
from vanilla_flash.models import gpt2

FUSED_OPTIONS = {
    "fused_bias_fc": "fused_dense_lib",
    "fused_mlp": "fused_dense_lib",
    "fused_dropout_add_ln": "dropout_layer_norm",
    "fused_xentropy": "xentropy_cuda_lib",
}


def _transformers_names_for_flash_attn_1() -> None:
    """flash-attn 1.0.9's GPT module imports three names that transformers 5 no longer has: a URL
    test used by its hub-checkpoint loader and two generation output classes (renamed to
    GenerateDecoderOnlyOutput in transformers 4.40). The training here uses neither its loader nor
    its generation; put equivalents back under the old names so the module imports."""
    import transformers.generation
    import transformers.utils

    if not hasattr(transformers.utils, "is_remote_url"):
        from urllib.parse import urlparse

        transformers.utils.is_remote_url = lambda url: urlparse(str(url)).scheme in ("http", "https")
    for old in ("GreedySearchDecoderOnlyOutput", "SampleDecoderOnlyOutput"):
        if not hasattr(transformers.generation, old) and hasattr(transformers.generation, "GenerateDecoderOnlyOutput"):
            setattr(transformers.generation, old, transformers.generation.GenerateDecoderOnlyOutput)


def _gpt_module():
    """flash_attn.models.gpt, imported with the names it needs from transformers in place."""
    if importlib.util.find_spec("flash_attn") is not None:
        _transformers_names_for_flash_attn_1()
    return importlib.import_module("flash_attn.models.gpt")


def available() -> str | None:
    """None if flash-attn's GPT model can be imported here, else why not."""
    try:
        _gpt_module()
    except (ImportError, ValueError) as err:
        return (
            f"flash-attn's GPT model cannot be imported ({err}): it ships with flash-attn 1.x and 2.x "
            "(notebooks/flash_attn_1 builds 1.0.9) and needs einops and torchvision"
        )
    return None


def missing(options: list[str]) -> dict[str, str]:
    """For each fused option whose CUDA extension is not importable: what to do about it."""
    out = {}
    for option in options:
        if option not in FUSED_OPTIONS:
            raise FlashAttnModelError(f"unknown fused option {option!r}; choose from {', '.join(FUSED_OPTIONS)}")
        module = FUSED_OPTIONS[option]
        try:
            importlib.import_module(module)
        except ImportError as err:
            out[option] = (
                f"{option} needs the CUDA extension `{module}` ({err}); build it from flash-attn's "
                f"{fused.EXTENSIONS[module][0]} (the build notebook's optional step, "
                "`vanilla_flash.builds.fused.build_extension`), or leave the option off"
            )
    return out


def config(
    size: str = "124M",
    *,
    vocab_size: int = gpt2.GPT2_VOCAB,
    seq_len: int | None = None,
    dropout: float = 0.0,
    fused: list[str] | None = None,
    use_flash_attn: bool = True,
    **dims,
):
    """A GPT2Config that flash-attn's GPTLMHeadModel reads, for one of our sizes (`dims`: n_layer,
    n_head, n_embd set by hand)."""
    cfg = gpt2.config(size, vocab_size=vocab_size, seq_len=seq_len, dropout=dropout, attn="eager", **dims)
    cfg.use_flash_attn = use_flash_attn
    cfg.pad_vocab_size_multiple = 64
    cfg.activation_function = "gelu_new"  # GPT-2's tanh GELU, as in transformers
    for option in FUSED_OPTIONS:
        setattr(cfg, option, option in (fused or []))
    return cfg


@dataclass
class Output:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class FlashAttnGPT(nn.Module):
    """flash-attn's GPTLMHeadModel with a loss and sampling, for the training code."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = _gpt_module().GPTLMHeadModel(cfg)
        self.real_vocab_size = getattr(cfg, "real_vocab_size", cfg.vocab_size)
        self.loss_fn = nn.CrossEntropyLoss()
        if getattr(cfg, "fused_xentropy", False):
            from flash_attn.losses.cross_entropy import CrossEntropyLoss

            self.loss_fn = CrossEntropyLoss(inplace_backward=True)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The model's body and head, called directly: flash-attn 1.0.9's GPTLMHeadModel.forward tests
        # isinstance(lm_head, ColumnParallelLinear), which is None unless fused_dense_lib is built.
        return self.model.lm_head(self.model.transformer(input_ids))

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **_) -> Output:
        logits = self.logits(input_ids)
        loss = None
        if labels is not None:  # next-token prediction, as transformers computes it
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
            loss = self.loss_fn(shifted, labels[:, 1:].reshape(-1))
        return Output(logits=logits, loss=loss)

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, max_new_tokens: int = 20, do_sample: bool = True, top_k: int = 50, **_
    ) -> torch.Tensor:
        """Sampling without a cache (enough for a sample line in the logs)."""
        ids = input_ids
        for _ in range(max_new_tokens):
            logits = self.logits(ids[:, -self.config.n_positions :])[:, -1, : self.real_vocab_size].float()
            if do_sample:
                values, index = logits.topk(min(top_k, logits.shape[-1]))
                choice = torch.multinomial(values.softmax(-1), 1)
                next_id = index.gather(-1, choice)
            else:
                next_id = logits.argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
        return ids


def build(size: str = "124M", *, fused: list[str] | None = None, **kwargs) -> FlashAttnGPT:
    """flash-attn's GPT-2 of `size` with the fused options asked for; a clear error for any that
    cannot run here."""
    reason = available()
    if reason:
        raise FlashAttnModelError(reason)
    problems = missing(fused or [])
    if problems:
        raise FlashAttnModelError("; ".join(problems.values()))
    return FlashAttnGPT(config(size, fused=fused, **kwargs))


def from_hf(hf_model, *, fused: list[str] | None = None) -> FlashAttnGPT:
    """flash-attn's GPT with the weights of a transformers GPT2LMHeadModel (flash-attn's own
    `remap_state_dict_hf_gpt2` renames and transposes them)."""
    c = hf_model.config
    size = next(name for name, dims in SIZES.items() if dims[:3] == (c.n_layer, c.n_head, c.n_embd))
    net = build(size, fused=fused, vocab_size=getattr(c, "real_vocab_size", c.vocab_size), seq_len=c.n_positions)
    # flash-attn's remapping reads the base model's keys (no "transformer." prefix) and expects the
    # causal-mask buffers older transformers stored as h.N.attn.bias
    state = {
        k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items() if k.startswith("transformer.")
    }
    for layer in range(c.n_layer):
        state.setdefault(f"h.{layer}.attn.bias", torch.empty(0))
    state = _gpt_module().remap_state_dict_hf_gpt2(state, net.config)
    net.model.load_state_dict(state)
    return net


def compare_logits(
    size: str = "124M",
    *,
    batch: int = 2,
    seq_len: int = 256,
    device: str = "cuda",
    dtype: torch.dtype = torch.float16,
    fused: list[str] | None = None,
    seed: int = 0,
) -> dict:
    """The same weights in both implementations, the same tokens: how far apart are the logits?"""
    torch.manual_seed(seed)
    hf = gpt2.build(size, attn="eager", seq_len=max(seq_len, 1024)).to(device).eval()
    fa = from_hf(hf, fused=fused).to(device).eval()
    ids = torch.randint(0, gpt2.GPT2_VOCAB, (batch, seq_len), device=device)
    with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=device == "cuda"):
        a = hf(input_ids=ids).logits.float()
        b = fa(ids).logits.float()
    diff = (a - b).abs()
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "fused": fused or [],
        "max_abs_diff": diff.max().item(),
        "mean_abs_diff": diff.mean().item(),
        "logit_scale": a.abs().mean().item(),
        "same_argmax": (a.argmax(-1) == b.argmax(-1)).float().mean().item(),
    }
