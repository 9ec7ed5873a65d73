"""flash-attn's own GPT model: selection and refusals on CPU (the model itself runs on the GPU)."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from vanilla_flash.config import TrainConfig
from vanilla_flash.models import flash_attn_gpt as fa_gpt
from vanilla_flash.training.run import GPT2Module

ROOT = Path(__file__).resolve().parents[2]


def test_without_flash_attn_the_model_is_refused_with_the_way_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)
    assert "flash-attn 1.x and 2.x" in fa_gpt.available()
    with pytest.raises(fa_gpt.FlashAttnModelError, match="notebooks/flash_attn_1"):
        fa_gpt.build("tiny")
    cfg = TrainConfig(model_impl="flash_attn")
    with pytest.raises(fa_gpt.FlashAttnModelError):
        GPT2Module(cfg, vocab_size=512)


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
    with pytest.raises(ValueError, match="hf, vanilla, flash_attn"):
        GPT2Module(TrainConfig(model_impl="jax"), vocab_size=512)


FA1_SOURCE = Path(os.environ.get("FA1_SOURCE", ROOT / ".venv/src/flash-attn-1.0.9"))

EQUIVALENCE = """
import sys, types, torch
from vanilla_flash.models import gpt2  # transformers first: it probes for torchvision on import
torch.manual_seed(0)
hf = gpt2.build("tiny", attn="eager").eval()
# flash-attn's Block imports torchvision's StochasticDepth (used with p=0 here, the identity);
# torchvision has no build for this CPU torch, so the test stands in for that one class.
ops = types.ModuleType("torchvision.ops")
class StochasticDepth(torch.nn.Module):
    def __init__(self, p, mode):
        super().__init__()
    def forward(self, x):
        return x
ops.StochasticDepth = StochasticDepth
sys.modules["torchvision"] = types.ModuleType("torchvision")
sys.modules["torchvision.ops"] = ops
from vanilla_flash.models import flash_attn_gpt as fa_gpt
from vanilla_flash.models import flops
assert fa_gpt.available() is None, fa_gpt.available()
original = fa_gpt.config
fa_gpt.config = lambda *a, **k: original(*a, **{**k, "use_flash_attn": False})  # its PyTorch attention on CPU
fa = fa_gpt.from_hf(hf).eval()
ids = torch.randint(0, 50257, (2, 48))
with torch.no_grad():
    a, b = hf(input_ids=ids, labels=ids), fa(ids, labels=ids)
print("max_abs_diff", (a.logits - b.logits).abs().max().item())
print("loss", a.loss.item(), b.loss.item())
print("params", flops.parameter_count(hf), flops.parameter_count(fa))
fa.train()
fa(ids, labels=ids).loss.backward()
print("generated", fa.generate(ids[:1, :5], max_new_tokens=5).shape[1])
"""


@pytest.mark.skipif(not (FA1_SOURCE / "flash_attn").exists(), reason=f"no flash-attn 1.0.9 source at {FA1_SOURCE}")
def test_same_weights_same_logits_as_transformers_gpt2_on_cpu():
    """flash-attn 1.0.9's real GPT code (its PyTorch attention path: the CUDA kernels need a GPU)
    with a transformers GPT-2's weights remapped gives the same logits and loss."""
    done = subprocess.run([sys.executable, "-c", EQUIVALENCE], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(FA1_SOURCE)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    values = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert float(values["max_abs_diff"]) < 1e-4
    hf_loss, fa_loss = map(float, values["loss"].split())
    assert fa_loss == pytest.approx(hf_loss, abs=1e-5)
    hf_params, fa_params = values["params"].split()
    assert hf_params == fa_params
    assert values["generated"] == "10"
