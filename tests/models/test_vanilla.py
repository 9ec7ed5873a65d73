"""`model_impl: vanilla`, the compact GPT-2: from the same weights, the same logits, loss and
gradients as transformers' GPT2LMHeadModel; the chunked loss equals the full one; its checkpoints
are transformers checkpoints (from_pretrained, generate); it trains through Lightning."""

import copy

import pytest
import torch
from conftest import learning_run as tiny
from conftest import losses
from transformers import GPT2LMHeadModel
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import ConfigError
from vanilla_flash.models import gpt2
from vanilla_flash.models import vanilla as vanilla_gpt
from vanilla_flash.training.run import train


@pytest.fixture
def pair():
    torch.manual_seed(0)
    hf = gpt2.build("tiny", attn="sdpa", seq_len=64, n_layer=3)
    return hf, vanilla_gpt.VanillaGPT.from_hf(copy.deepcopy(hf))


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in model.named_parameters()}


def test_same_weights_same_logits_loss_and_gradients_as_transformers(pair):
    hf, vanilla = pair
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(1))
    a, b = hf(input_ids=ids, labels=ids), vanilla(input_ids=ids, labels=ids)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-6, atol=1e-6)
    a.loss.backward()
    b.loss.backward()
    ga, gb = _grads(hf), _grads(vanilla)
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_chunked_loss_equals_the_full_one(pair, monkeypatch):
    _, vanilla = pair
    chunked = copy.deepcopy(vanilla)
    chunked.loss = "chunked"
    monkeypatch.setattr(vanilla_gpt, "CHUNK_TOKENS", 37)  # 126 positions: four chunks, the last one short
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(2))
    labels = ids.clone()
    labels[0, 10:20] = -100  # ignored positions count in neither
    full, part = vanilla(input_ids=ids, labels=labels), chunked(input_ids=ids, labels=labels)
    assert part.logits is None
    torch.testing.assert_close(part.loss, full.loss, rtol=1e-6, atol=1e-6)
    full.loss.backward()
    part.loss.backward()
    for name, g in _grads(vanilla).items():
        torch.testing.assert_close(_grads(chunked)[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_the_chunked_loss_compiles_into_one_graph_with_the_same_loss_and_gradients(pair, monkeypatch):
    """What the GPUs run: torch.compile traces the chunked loss, its gradients worked out in the
    forward pass, without a graph break (fullgraph), and they are still the full loss's."""
    _, vanilla = pair
    chunked = copy.deepcopy(vanilla)
    chunked.loss = "chunked"
    monkeypatch.setattr(vanilla_gpt, "CHUNK_TOKENS", 50)  # 126 positions: three chunks
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(3))
    compiled = torch.compile(chunked, fullgraph=True)
    loss = compiled(input_ids=ids, labels=ids).loss
    full = vanilla(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(loss, full, rtol=1e-5, atol=1e-5)
    loss.backward()
    full.backward()
    for name, g in _grads(vanilla).items():
        torch.testing.assert_close(_grads(chunked)[name], g, rtol=1e-3, atol=1e-5, msg=name)
    with torch.no_grad():  # evaluation takes the path without gradients, to the same loss
        torch.testing.assert_close(chunked(input_ids=ids, labels=ids).loss, full, rtol=1e-5, atol=1e-5)


def test_a_new_vanilla_model_starts_from_the_weights_transformers_would_give_it():
    torch.manual_seed(5)
    hf, after_hf = gpt2.build("tiny", seq_len=64, n_layer=2), torch.rand(3)
    torch.manual_seed(5)
    vanilla, after_vanilla = vanilla_gpt.build("tiny", seq_len=64, n_layer=2), torch.rand(3)
    theirs = hf.state_dict()
    for name, tensor in vanilla.state_dict().items():
        torch.testing.assert_close(tensor, theirs[name], rtol=0, atol=0, msg=name)
    assert vanilla.lm_head.weight is vanilla.transformer.wte.weight
    assert torch.equal(after_vanilla, after_hf)  # and no more random numbers drawn than transformers draws


def test_checkpoints_are_transformers_checkpoints(pair, tmp_path):
    hf, vanilla = pair
    vanilla.save_pretrained(tmp_path)
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="sdpa")
    ids = torch.randint(0, 50257, (1, 16), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loaded(input_ids=ids).logits, vanilla(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    greedy = dict(max_new_tokens=6, do_sample=False, attention_mask=torch.ones_like(ids))
    assert torch.equal(vanilla.generate(ids, **greedy), hf.generate(ids, **greedy))
    # the transformers view shares the tensors: a training step on one is seen by the other
    view = vanilla.as_hf()
    with torch.no_grad():
        vanilla.transformer.wte.weight[0].add_(1.0)
    assert torch.equal(view.lm_head.weight[0], vanilla.transformer.wte.weight[0])


def test_a_new_model_has_transformers_names_shapes_and_initialisation():
    torch.manual_seed(0)
    fresh, hf = vanilla_gpt.build("124M", seq_len=128), gpt2.build("124M", seq_len=128)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in hf.state_dict().items()}
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.5.mlp.c_proj.weight"):
        ours, theirs = dict(fresh.named_parameters())[name], dict(hf.named_parameters())[name]
        assert abs(ours.std().item() - theirs.std().item()) < 0.1 * theirs.std().item(), name
    with pytest.raises(ValueError, match="loss 'sparse'"):
        vanilla_gpt.VanillaGPT(hf.config, loss="sparse")


def test_the_chunked_loss_needs_the_vanilla_model():
    with pytest.raises(ConfigError, match="needs model_impl: vanilla"):
        TrainConfig(loss="chunked")
    assert TrainConfig(model_impl="vanilla", loss="chunked").loss == "chunked"


def test_a_bf16_residual_stream_carries_bf16_between_the_blocks_and_computes_nearly_the_same(pair):
    """`residual="bf16"` under bf16 autocast: every block takes and gives bfloat16, the loss and the
    gradients stay near the float32 stream's; without autocast nothing changes; it compiles whole."""
    _, vanilla = pair
    low = copy.deepcopy(vanilla)
    low.residual = "bf16"
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(4))
    seen = []
    low.transformer.h[1].register_forward_hook(lambda m, args, out: seen.append((args[0].dtype, out.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = vanilla(input_ids=ids, labels=ids).loss, low(input_ids=ids, labels=ids).loss
    assert seen == [(torch.bfloat16, torch.bfloat16)]
    torch.testing.assert_close(b, a, rtol=1e-2, atol=0)
    a.backward()
    b.backward()
    ours, theirs = (torch.cat([g.flatten() for g in _grads(m).values()]) for m in (low, vanilla))
    assert torch.nn.functional.cosine_similarity(ours, theirs, dim=0) > 0.99
    assert not torch.equal(ours, theirs)  # bf16 sums: other numbers, not the same ones
    torch.testing.assert_close(low(input_ids=ids, labels=ids).loss, vanilla(input_ids=ids, labels=ids).loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        compiled = torch.compile(low, fullgraph=True)(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(compiled.float(), b.detach(), rtol=1e-2, atol=0)


def test_a_bf16_residual_stream_needs_the_vanilla_model_and_bf16(tmp_path):
    with pytest.raises(ConfigError, match="residual: 'bf16' needs model_impl: vanilla and precision: bf16-mixed"):
        TrainConfig(residual="bf16", precision="bf16-mixed")
    with pytest.raises(ConfigError, match="residual: 'bf16' needs"):
        TrainConfig(residual="bf16", model_impl="vanilla", precision="16-mixed")
    with pytest.raises(ValueError, match="residual 'half'"):
        vanilla_gpt.build("tiny", seq_len=64, n_layer=1, residual="half")
    cfg = TrainConfig(residual="bf16", model_impl="vanilla", precision="bf16-mixed")
    assert cfg.residual == "bf16"


def test_through_lightning_it_follows_the_loss_curve_of_transformers_gpt2(tmp_path):
    """Same seed, same data: the vanilla model with the chunked loss starts from transformers'
    weights and takes the same steps (float32 on a CPU: up to rounding)."""

    def curve(name, **overrides):
        train(tiny(tmp_path / name, max_steps=8, log_every=1, **overrides))
        return list(losses(tmp_path / name / "run").values())

    hf, vanilla = curve("hf"), curve("vanilla", model_impl="vanilla", loss="chunked")
    assert len(hf) == 8 and hf[-1] < hf[0]
    assert vanilla == pytest.approx(hf, abs=1e-4)


def test_it_trains_through_lightning_and_leaves_a_transformers_model(tmp_path):
    summary = train(tiny(tmp_path, model_impl="vanilla", loss="chunked", max_steps=12))
    assert summary["steps"] == 12 and summary["final"]["train/loss"] < 6.0
    model = GPT2LMHeadModel.from_pretrained(tmp_path / "run/model")
    assert model.config.n_layer == 2 and summary["parameters"] > 0


def test_with_bf16_weights_the_chunked_loss_is_as_close_to_float32_as_the_full_one(pair, monkeypatch):
    """Pure bf16 training (precision bf16-true): the chunks' gradients for the tied embedding are summed in the
    matmul itself, in bf16 between chunks; no further from float32's than the full loss's bf16 gradients."""
    _, reference = pair
    monkeypatch.setattr(vanilla_gpt, "CHUNK_TOKENS", 21)  # 126 positions: six chunks
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(4))
    chunked = copy.deepcopy(reference).bfloat16()
    chunked.loss = "chunked"
    models = {"float32": reference, "full": copy.deepcopy(reference).bfloat16(), "chunked": chunked}
    for model in models.values():
        model(input_ids=ids, labels=ids).loss.backward()
    exact = reference.transformer.wte.weight.grad
    errors = {k: (m.transformer.wte.weight.grad.float() - exact).norm() / exact.norm() for k, m in models.items()}
    assert models["chunked"].transformer.wte.weight.grad.dtype == torch.bfloat16
    assert errors["chunked"] < 2 * errors["full"] + 1e-3, errors
