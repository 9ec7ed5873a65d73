"""`from_scratch`, notebook 05's kernel as an attention backend: what it refuses, by name, before any
kernel is built (the GPU runs it: experiments/kernel_ladder)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils import cpp_extension
from vanilla_flash.attention import from_scratch, registry
from vanilla_flash.env import Machine
from vanilla_flash.errors import AttentionError

T4 = Machine(device="cuda", gpu_name="Tesla T4", capability=(7, 5))
V100 = Machine(device="cuda", gpu_name="Tesla V100", capability=(7, 0))
A100 = Machine(device="cuda", gpu_name="A100", capability=(8, 0))  # has bfloat16: the refusal is the kernel's


@pytest.fixture
def nvcc(monkeypatch):
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", "/usr/local/cuda")


def test_it_runs_where_its_kernel_does(nvcc):
    assert registry.why_not("from_scratch", T4, dtype=torch.float16, head_dim=64, training=False) is None
    assert registry.why_not("from_scratch", T4, dtype=torch.float16, head_dim=128, training=False) is None
    assert "compute capability >= 7.5" in registry.why_not("from_scratch", V100, dtype=torch.float16, head_dim=64)
    assert "needs a CUDA GPU" in registry.why_not("from_scratch", Machine(), dtype=torch.float16, head_dim=64)


@pytest.mark.parametrize(
    "dtype, head_dim, training, dropout, said",
    [
        (torch.bfloat16, 64, False, False, "takes float16 only"),
        (torch.float16, 96, False, False, "head dims 64 and 128, not 96"),
        (torch.float16, 64, False, True, "has no attention dropout"),
    ],
)
def test_it_refuses_by_name_what_it_cannot_do(nvcc, dtype, head_dim, training, dropout, said):
    reason = registry.why_not("from_scratch", A100, dtype=dtype, head_dim=head_dim, training=training, dropout=dropout)
    assert said in reason


def test_without_a_compiler_it_says_so(monkeypatch):
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    assert "needs a CUDA compiler (nvcc)" in registry.why_not("from_scratch", T4, dtype=torch.float16, head_dim=64)


def test_auto_never_picks_it_without_a_measurement(nvcc):
    for dtype in (torch.float16, torch.bfloat16):
        assert "from_scratch" not in registry.preference(T4, dtype)


@pytest.mark.parametrize(
    "change, said",
    [
        ({"attention_mask": torch.ones(1, 1, 8, 8, dtype=torch.bool)}, "takes no attention mask"),
        ({"scaling": 0.5}, "scales the scores by 1/√d only"),
        ({"dtype": torch.bfloat16}, "takes float16 only"),
        ({"head_dim": 32}, "head dims 64 and 128, not 32"),
    ],
)
def test_a_call_it_cannot_take_stops_before_the_kernel(change, said):
    shape = (1, 2, 8, change.get("head_dim", 64))
    q, k, v = (torch.randn(shape, dtype=change.get("dtype", torch.float16), requires_grad=change.get("grad", False))
               for _ in range(3))  # fmt: skip
    with pytest.raises(AttentionError, match=said):
        from_scratch.forward(None, q, k, v, change.get("attention_mask"), scaling=change.get("scaling"), is_causal=True)


def test_training_with_it_runs_the_backward_kernel_on_what_the_forward_kept(monkeypatch):
    """The autograd wiring, on CPU: a stand-in for the compiled kernels computes attention and its
    gradients in float32; through `forward` (transformers' layout in and out) the gradients must be those
    of float32 attention, the backward kernel must get the forward pass's output and log-sum-exp, a
    contiguous dO and the causal flag."""
    seen = {}

    class StandIn:
        @staticmethod
        def attention_forward(q, k, v, causal):
            scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.shape[-1])
            if causal:
                scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
            return (torch.softmax(scores, -1) @ v.float()).half(), torch.logsumexp(scores, -1)

        @staticmethod
        def gradients_backward(q, k, v, out, lse, dout, causal):
            seen.update(out=out, lse=lse, contiguous=dout.is_contiguous(), causal=causal)
            with torch.enable_grad():  # autograd runs a backward function without it
                leaves = [t.detach().float().requires_grad_(True) for t in (q, k, v)]
                ref = F.scaled_dot_product_attention(*leaves, is_causal=causal)
                return [g.half() for g in torch.autograd.grad(ref, leaves, dout.float())]

    monkeypatch.setattr(from_scratch, "kernel", lambda arch: StandIn)
    monkeypatch.setenv(from_scratch.ARCH_VARIABLE, "compute_75")
    q, k, v = (torch.randn(2, 3, 20, 64, dtype=torch.float16, requires_grad=True) for _ in range(3))
    out, _ = from_scratch.forward(None, q, k, v, None, is_causal=True)  # (batch, seq, heads, head_dim)
    grad = torch.randn_like(out)
    out.backward(grad)
    leaves = [t.detach().float().requires_grad_(True) for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*leaves, is_causal=True).transpose(1, 2)
    ref.backward(grad.float())
    for mine, theirs in zip((q, k, v), leaves, strict=True):
        assert torch.allclose(mine.grad.float(), theirs.grad, atol=2e-3), (mine.grad.float() - theirs.grad).abs().max()
    assert torch.allclose(out.float(), ref.detach(), atol=2e-3)
    assert seen["causal"] is True and seen["contiguous"] and seen["lse"].shape == (2, 3, 20)
    assert seen["out"].shape == (2, 3, 20, 64)  # the forward pass's own output, in the kernel's layout
