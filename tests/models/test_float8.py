"""The vanilla model's matmuls in float8 (`float8: tensorwise | rowwise`): on a CPU torchao emulates
float8, so what is tested here is the wiring and the numbers' closeness; the speed is the GPU's
(experiments/speed)."""

import copy

import pytest
import torch
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import ConfigError
from vanilla_flash.models import float8, gpt2
from vanilla_flash.models import vanilla as vanilla_gpt


@pytest.fixture(scope="module")
def bf16_model():
    torch.manual_seed(0)
    hf = gpt2.build("tiny", attn="sdpa", seq_len=64, n_layer=2)
    return vanilla_gpt.VanillaGPT.from_hf(hf, loss="chunked", residual="bf16")


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach().float(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("recipe", float8.RECIPES)
def test_float8_matmuls_give_nearly_the_bf16_loss_and_gradients(bf16_model, recipe):
    """Only the blocks' four matmuls change (the head and the loss stay bf16): the loss within 1% of
    bf16's, the gradients pointing the same way; the weights are the same tensors, unconverted."""
    low = copy.deepcopy(bf16_model)
    low.set_float8(recipe)
    affines = [m for m in low.modules() if isinstance(m, vanilla_gpt.Affine)]
    assert len(affines) == 4 * 2 and all(m.float8_matmul.recipe == recipe for m in affines)
    assert {n: p.dtype for n, p in low.named_parameters()} == {n: p.dtype for n, p in bf16_model.named_parameters()}
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(1))
    loss, grads = _loss_and_grads(bf16_model, ids)
    loss8, grads8 = _loss_and_grads(low, ids)
    torch.testing.assert_close(loss8, loss, rtol=1e-2, atol=0)
    assert torch.nn.functional.cosine_similarity(grads8, grads, dim=0) > 0.98
    assert not torch.equal(grads8, grads)  # float8's roundings: other numbers
    low.set_float8(None)
    assert all(m.float8_matmul is None for m in affines)
    torch.testing.assert_close(_loss_and_grads(low, ids)[0], loss)


def test_float8_is_a_setting_of_the_vanilla_model_in_bf16_and_names_what_it_needs(monkeypatch):
    assert TrainConfig(model_impl="vanilla", precision="bf16-mixed", float8="rowwise").float8 == "rowwise"
    with pytest.raises(ConfigError, match="float8 needs model_impl: vanilla and precision: bf16-mixed"):
        TrainConfig(float8="tensorwise", precision="bf16-mixed")
    with pytest.raises(ConfigError, match="float8 needs"):
        TrainConfig(float8="tensorwise", model_impl="vanilla", precision="16-mixed")
    with pytest.raises(ConfigError, match="float8"):
        TrainConfig(float8="blockwise", model_impl="vanilla", precision="bf16-mixed")
    # a GPU without float8 tensor cores (a T4, an A100) is told so by name
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    reason = float8.why_not("rowwise", "cuda")
    assert "compute capability 8.9 or newer" in reason and "8.0" in reason
    with pytest.raises(ConfigError, match="compute capability 8.9"):
        float8.matmul("rowwise", "cuda")
    assert float8.matmul(None) is None


def test_without_torchao_float8_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchao.float8", None)  # an import of it fails, as where it is missing
    assert "pip install torchao" in float8.why_not("tensorwise", "cpu")
    with pytest.raises(ConfigError, match="pip install torchao"):
        vanilla_gpt.build("tiny", seq_len=64, n_layer=1, float8="tensorwise")


def test_torchao_imported_by_transformers_leaves_the_notebooks_quiet():
    """transformers imports torchao wherever it is installed; the warnings it and torch print then (C++
    extensions that do not load on this torch, enum registrations) stay out of a notebook's output."""
    import subprocess
    import sys

    code = "import vanilla_flash, transformers.quantizers.auto, torchao.float8"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Failed to load" not in done.stderr and "register_constant" not in done.stderr, done.stderr
