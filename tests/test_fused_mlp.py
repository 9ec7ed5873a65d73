"""`mlp: fused`: GPT-2's MLP with its bias and GELU in cuBLASLt's epilogues. cuBLASLt needs a GPU
(`tools/gpu/fused_mlp_check.py` checks the operators there); here, on a CPU, the operators are
replaced by PyTorch code that computes what their docstrings say, which checks everything around
them: the forward and backward passes of `FusedMLP` against autograd, the shapes torch.compile
is told the operators return, and where the option is refused."""

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from vanilla_flash import fused_mlp, vanilla_gpt
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import ConfigError


def gelu_linear(x, weight_t, bias):
    """What `fused_mlp.gelu_linear` computes: (gelu(pre), pre), pre = x @ weight_t.T + bias."""
    pre = x @ weight_t.t() + bias
    return F.gelu(pre, approximate="tanh"), pre


def gelu_linear_dgrad(grad_y, weight2_t, pre):
    """What `fused_mlp.gelu_linear_dgrad` computes: grad_pre = (grad_y @ weight2_t) * gelu'(pre), and
    its column sums."""
    pre = pre.detach().requires_grad_()
    with torch.enable_grad():
        (slope,) = torch.autograd.grad(F.gelu(pre, approximate="tanh").sum(), pre)
    grad_pre = (grad_y @ weight2_t) * slope
    return grad_pre, grad_pre.sum(0)


@pytest.fixture
def stand_ins(monkeypatch):
    monkeypatch.setattr(fused_mlp, "gelu_linear", gelu_linear)
    monkeypatch.setattr(fused_mlp, "gelu_linear_dgrad", gelu_linear_dgrad)


def test_fused_mlp_gives_the_mlp_and_every_gradient_of_it(stand_ins):
    gen = torch.Generator().manual_seed(0)
    x, w1, b1, w2, b2 = (torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
                         for shape in ((37, 24), (24, 96), (96,), (96, 24), (24,)))  # fmt: skip
    grad = torch.randn(37, 24, generator=gen, dtype=torch.float64)
    y = fused_mlp.FusedMLP.apply(x, w1, b1, w2, b2)
    (y * grad).sum().backward()
    fused = [t.grad.clone() for t in (x, w1, b1, w2, b2)]
    for t in (x, w1, b1, w2, b2):
        t.grad = None
    want = F.gelu(x @ w1 + b1, approximate="tanh") @ w2 + b2  # transformers' Conv1D layout: (in, out)
    (want * grad).sum().backward()
    torch.testing.assert_close(y, want)
    for name, got, t in zip(("x", "w1", "b1", "w2", "b2"), fused, (x, w1, b1, w2, b2), strict=True):
        assert got.shape == t.shape, name
        torch.testing.assert_close(got, t.grad, msg=name)


def test_torch_compile_is_told_the_shapes_the_operators_return():
    """The fake implementations (what torch.compile traces with) give the shapes and dtypes of what
    the operators are documented to return."""
    with FakeTensorMode():
        x, w_t, b = torch.empty(10, 8, dtype=torch.bfloat16), torch.empty(32, 8, dtype=torch.bfloat16), torch.empty(32)
        act, pre = fused_mlp.gelu_linear(x, w_t, b.bfloat16())
        assert act.shape == pre.shape == (10, 32) and act.dtype == pre.dtype == torch.bfloat16
        grad_y, w2_t = torch.empty(10, 8, dtype=torch.bfloat16), torch.empty(8, 32, dtype=torch.bfloat16)
        grad_pre, grad_bias = fused_mlp.gelu_linear_dgrad(grad_y, w2_t, pre)
        assert grad_pre.shape == (10, 32) and grad_bias.shape == (32,) and grad_bias.dtype == torch.bfloat16


def test_where_cublaslt_cannot_run_the_error_says_what_to_use():
    model = vanilla_gpt.build("tiny", seq_len=16, n_layer=1, mlp="fused")
    assert model.transformer.h[0].mlp.kind == "fused"
    ids = torch.randint(0, 50257, (1, 16))
    with pytest.raises(ConfigError, match="mlp: 'fused' needs a CUDA GPU and bf16 or fp16 mixed precision, not cpu"):
        model(input_ids=ids, labels=ids)
    with pytest.raises(ValueError, match="mlp 'erf' is not one of: torch, fused"):
        vanilla_gpt.build("tiny", seq_len=16, n_layer=1, mlp="erf")


def test_the_config_takes_it_for_the_vanilla_model_only():
    assert TrainConfig(model_impl="vanilla", mlp="fused").mlp == "fused"
    with pytest.raises(ConfigError, match="mlp: 'fused' needs model_impl: vanilla"):
        TrainConfig(model_impl="hf", mlp="fused")
