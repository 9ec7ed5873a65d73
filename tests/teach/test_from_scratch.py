"""FlashAttention from scratch (the 05 notebooks' library code), on a CPU: the online softmax, the
tiled forward pass and the backward pass by recomputation against PyTorch, and the memory traffic
each moves against the paper's formulas. The CUDA kernel is compiled and run on a GPU only."""

import math

import pytest
import torch
import torch.nn.functional as F
from vanilla_flash.teach import from_scratch as fs


def _qkv(n=100, d=16, b=2, h=3, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, requires_grad=requires_grad) for _ in range(3)]


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_online_softmax_is_softmax(block):
    x = torch.randn(4, 5, 300, generator=torch.Generator().manual_seed(1)) * 10
    torch.testing.assert_close(fs.online_softmax(x, block), torch.softmax(x, dim=-1))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("block_q", "block_k"), [(16, 16), (32, 8), (7, 13), (128, 128)])
def test_the_tiled_forward_pass_is_attention(causal, block_q, block_k):
    q, k, v = _qkv()
    out, lse, _ = fs.tiled_forward(q, k, v, block_q, block_k, causal=causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fs.naive_attention(q, k, v, causal), out, rtol=1e-5, atol=1e-5)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(torch.ones(100, 100, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_the_backward_pass_by_recomputation_matches_autograd(causal):
    q, k, v = _qkv(n=90, requires_grad=True)
    grad_out = torch.randn(2, 3, 90, 16, generator=torch.Generator().manual_seed(5))
    fs.naive_attention(q, k, v, causal).backward(grad_out)
    out, lse, _ = fs.tiled_forward(q.detach(), k.detach(), v.detach(), 32, 16, causal=causal)
    dq, dk, dv = fs.tiled_backward(q.detach(), k.detach(), v.detach(), out, lse, grad_out, 16, 32, causal=causal)
    for mine, theirs in ((dq, q.grad), (dk, k.grad), (dv, v.grad)):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_the_traffic_counted_is_the_formula_and_far_below_naive(causal):
    n, d, block_q = 512, 64, 64
    q, k, v = _qkv(n=n, d=d, b=1, h=1)
    _, _, traffic = fs.tiled_forward(q, k, v, block_q, 64, causal=causal)
    assert traffic.total == fs.tiled_bytes(n, d, block_q, causal=causal)
    assert traffic.by_tensor["Q"] == traffic.by_tensor["O"] == n * d * 2  # each read or written once
    assert traffic.by_tensor["K"] == traffic.by_tensor["V"]  # K and V: once per query block
    assert fs.tiled_bytes(n, d, block_q, causal=causal) < fs.naive_bytes(n, d)
    # both grow as N² for long sequences, naive as 8N² bytes, tiled as 4N²d/block_q: its lead is about
    # 2 block_q / d, so the more queries a tile holds on chip (the paper's M), the less it moves
    for bq in (64, 128, 256):
        lead = fs.naive_bytes(8192, d) / fs.tiled_bytes(8192, d, bq)
        assert lead == pytest.approx(2 * bq / d, rel=0.1)
