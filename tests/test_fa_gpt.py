"""flash-attn's own GPT model: selection and refusals on CPU (the model itself runs on the GPU)."""

import sys
import types

import pytest
from vanilla_flash import fa_gpt
from vanilla_flash.train import GPT2Module, TrainConfig


def test_without_flash_attn_the_model_is_refused_with_the_way_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)
    assert "flash-attn 1.x and 2.x" in fa_gpt.available()
    with pytest.raises(fa_gpt.FlashAttnModelError, match="notebooks/flash_attn_1"):
        fa_gpt.build("tiny")
    cfg = TrainConfig(model_impl="flash_attn")
    with pytest.raises(fa_gpt.FlashAttnModelError):
        GPT2Module(cfg.__dict__, vocab_size=512)


def test_each_fused_option_names_its_missing_extension(monkeypatch):
    monkeypatch.setitem(sys.modules, "fused_dense_lib", types.ModuleType("fused_dense_lib"))  # "built"
    for name in ("dropout_layer_norm", "xentropy_cuda_lib"):
        monkeypatch.setitem(sys.modules, name, None)  # not built
    problems = fa_gpt.missing(["fused_bias_fc", "fused_mlp", "fused_dropout_add_ln", "fused_xentropy"])
    assert set(problems) == {"fused_dropout_add_ln", "fused_xentropy"}
    assert (
        "dropout_layer_norm" in problems["fused_dropout_add_ln"]
        and "csrc/layer_norm" in problems["fused_dropout_add_ln"]
    )
    with pytest.raises(fa_gpt.FlashAttnModelError, match="unknown fused option"):
        fa_gpt.missing(["fused_everything"])


def test_config_carries_the_switches():
    cfg = fa_gpt.config("tiny", fused=["fused_mlp"])
    assert cfg.use_flash_attn and cfg.fused_mlp and not cfg.fused_bias_fc and cfg.pad_vocab_size_multiple == 64
    assert cfg.vocab_size == 50304 and cfg.activation_function == "gelu_new"


def test_unknown_model_impl_is_refused():
    with pytest.raises(ValueError, match="hf, flash_attn"):
        GPT2Module(TrainConfig(model_impl="jax").__dict__, vocab_size=512)
