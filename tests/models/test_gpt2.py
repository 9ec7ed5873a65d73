"""GPT-2 built by name: every CPU backend gives the same loss, and the model round-trips."""

import pytest
import torch
from vanilla_flash.models import flops, gpt2

CPU_BACKENDS = ["eager", "sdpa", "sdpa_math", "sdpa_flash", "auto"]


def test_sizes_and_padded_vocab():
    assert gpt2.padded_vocab(50257) == 50304
    assert gpt2.padded_vocab(4096) == 4096
    cfg = gpt2.config("124M")
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions, cfg.vocab_size) == (12, 12, 768, 1024, 50304)
    assert cfg.attn_pdrop == 0.0 and cfg.resid_pdrop == 0.0
    net = gpt2.GPT2LMHeadModel(gpt2.config("124M", attn="sdpa"))
    assert 123e6 < flops.parameter_count(net) < 125e6  # GPT-2 "124M", without position embeddings


def test_bad_names_fail_before_anything_is_built():
    with pytest.raises(ValueError, match="tiny, 124M, 355M"):
        gpt2.config("7B")
    with pytest.raises(RuntimeError, match="unknown attention backend"):
        gpt2.config("tiny", attn="flash")


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_every_cpu_backend_gives_the_eager_loss_and_gradients(dropout):
    torch.manual_seed(0)
    net = gpt2.build("tiny", attn="eager", dropout=dropout).eval()  # eval: dropout off, same numbers
    ids = torch.randint(0, 50257, (2, 48))
    results = {}
    for name in CPU_BACKENDS:
        gpt2.set_attention(net, name)
        net.zero_grad()
        loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        results[name] = (loss.item(), net.transformer.h[0].attn.c_attn.weight.grad.clone())
    ref_loss, ref_grad = results["eager"]
    assert 10.0 < ref_loss < 11.5  # ln(50257) = 10.8 for an untrained model
    for name, (loss, grad) in results.items():
        assert loss == pytest.approx(ref_loss, abs=1e-5), name
        torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-4, msg=name)


def test_attention_dropout_is_applied_in_training_and_not_in_eval_on_each_backend_that_has_it():
    """Only attention dropout on (the residual and embedding dropout off): in training two passes differ
    and the gradients are finite; in eval the backend is called without dropout and two passes agree."""
    ids = torch.randint(0, 50257, (2, 32))
    for name in ("eager", "sdpa", "sdpa_math"):
        net = gpt2.build("tiny", attn=name, dropout=0.0)
        for block in net.transformer.h:
            block.attn.attn_dropout.p = 0.3
        net.train()
        first, second = (net(input_ids=ids, labels=ids).loss for _ in range(2))
        assert first.item() != second.item(), f"{name}: attention dropout was not applied in training"
        first.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        net.eval()
        with torch.no_grad():
            assert net(input_ids=ids).logits.equal(net(input_ids=ids).logits), f"{name}: dropout in eval"


def test_save_load_generate_round_trip(tmp_path):
    torch.manual_seed(0)
    net = gpt2.build("tiny", attn="sdpa").eval()
    prompt = torch.randint(0, 50257, (1, 6))
    before = net.generate(prompt, max_new_tokens=8, do_sample=False)
    net.save_pretrained(tmp_path)
    again = gpt2.load(tmp_path, attn="sdpa_math").eval()
    assert again.config._attn_implementation == "sdpa_math"
    assert again.generate(prompt, max_new_tokens=8, do_sample=False).tolist() == before.tolist()
    assert gpt2.load(tmp_path).config.real_vocab_size == 50257


def test_generation_never_samples_the_padding_rows():
    torch.manual_seed(0)
    net = gpt2.build("tiny").eval()
    with torch.no_grad():
        net.lm_head.weight[50257:] = 100.0  # make the padding rows the most likely tokens
    out = net.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=10, do_sample=True, top_k=0)
    assert out.max() < 50257


def test_flash_backends_build_without_their_library():
    """transformers tries to import a kernel for any name containing "flash" when a model is
    constructed; our backends load their library on first call instead, so building works here."""
    for name in ("flash_attn_1", "flash_attn_2", "flash_attn_4", "sdpa_flash"):
        assert gpt2.build("tiny", attn=name).config._attn_implementation == name
