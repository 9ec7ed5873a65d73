"""FLOP counts: the attention kernel's (FlashAttention papers) and the model's (PaLM, for MFU)."""

from vanilla_flash.models import flops, gpt2


def test_flop_counts():
    assert flops.attention_flops(1, 1, 1024, 64, False, "fwd") == 4 * 1024 * 1024 * 64
    assert flops.attention_flops(2, 3, 512, 64, True, "fwd_bwd") == 3.5 * 4 * 2 * 3 * 512 * 512 * 64 / 2


def test_model_flops_per_token_counts_weights_and_attention():
    net = gpt2.build("tiny", attn="sdpa", seq_len=64)
    n = flops.parameter_count(net)
    assert n == sum(p.numel() for name, p in net.named_parameters() if "wpe" not in name)
    c = net.config
    head_dim = c.n_embd // c.n_head
    assert flops.model_flops_per_token(net, 64) == 6 * n + 12 * c.n_layer * c.n_head * head_dim * 64


def test_mfu_against_the_data_sheet_peak():
    assert flops.mfu(1000.0, 1e9, "NVIDIA H100 80GB HBM3") == 1e12 / 989e12
    assert flops.mfu(1000.0, 1e9, None) is None and flops.peak_flops("Some New GPU") is None
