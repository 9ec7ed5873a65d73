"""GPT-2 configurations by name, built as Hugging Face `GPT2LMHeadModel`.

Because the model is transformers' own, `save_pretrained` / `from_pretrained` / `generate` work
as usual; only the attention function differs, chosen by name from `vanilla_flash.attention.registry`.
(`vanilla_flash.models.flops` counts its parameters and FLOPs.)
"""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel

from vanilla_flash.attention import registry as attention
from vanilla_flash.config import dims
from vanilla_flash.errors import ConfigError

GPT2_VOCAB = 50257  # GPT-2's BPE vocabulary


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """Round the vocabulary up (50257 -> 50304): tensor cores like matrix sizes in multiples of 64."""
    return -(-vocab_size // multiple) * multiple


def config(
    size: str = "tiny",
    *,
    vocab_size: int = GPT2_VOCAB,
    seq_len: int | None = None,
    dropout: float = 0.0,
    attn: str = "auto",
    n_layer: int | None = None,
    n_head: int | None = None,
    n_embd: int | None = None,
) -> GPT2Config:
    """A `GPT2Config` for `size` (with `n_layer`, `n_head`, `n_embd` changing the preset) with
    `attn` as its attention backend.

    Dropout defaults to 0 (as in nanoGPT's pretraining): it costs speed, flash-attn 4 has no
    attention dropout, and a model that sees each token once barely overfits.
    """
    attention.get(attn)  # a clear error for a misspelt backend, before anything is built
    n_layer, n_head, n_embd, n_ctx = dims(size, n_layer, n_head, n_embd)
    if n_embd % n_head:
        raise ConfigError(f"n_embd ({n_embd}) does not divide by n_head ({n_head}); choose a multiple of it")
    cfg = GPT2Config(
        vocab_size=padded_vocab(vocab_size),
        n_positions=seq_len or n_ctx,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    cfg.real_vocab_size = vocab_size
    cfg._attn_implementation = attn
    return cfg


# The model is constructed with PyTorch SDPA and switched to the chosen backend afterwards:
# transformers treats any implementation whose name contains "flash" as its own flash-attention
# integration at construction time and tries to import (or download) that kernel.
CONSTRUCT_WITH = "sdpa"


def build(size: str = "tiny", *, attn: str = "auto", **overrides) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 of `size` using attention backend `attn`."""
    attention.register()
    model = GPT2LMHeadModel(config(size, attn=CONSTRUCT_WITH, **overrides))
    set_attention(model, attn)
    never_generate_padding(model)
    return model


def load(path, *, attn: str = "auto") -> GPT2LMHeadModel:
    """`from_pretrained` with our backends registered, running attention backend `attn`."""
    attention.register()
    model = GPT2LMHeadModel.from_pretrained(path, attn_implementation=CONSTRUCT_WITH)
    set_attention(model, attn)
    never_generate_padding(model)
    return model


def set_attention(model: GPT2LMHeadModel, attn: str) -> None:
    """Switch a built model to another attention backend in place."""
    attention.get(attn)
    attention.register()
    model.config._attn_implementation = attn


def never_generate_padding(model: GPT2LMHeadModel) -> None:
    """The rows added by `padded_vocab` are never a target; keep `generate` from sampling them. And
    name the loss: transformers cannot tell it from the class name GPT2LMHeadModel and warns on
    every first forward pass that it falls back to the next-token loss, which is the one meant."""
    model.loss_type = "ForCausalLM"
    real = getattr(model.config, "real_vocab_size", model.config.vocab_size)
    if real < model.config.vocab_size:
        model.generation_config.suppress_tokens = list(range(real, model.config.vocab_size))
    model.generation_config.pad_token_id = model.config.eos_token_id
