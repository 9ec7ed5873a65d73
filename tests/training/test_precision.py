import pytest
import torch
from conftest import A100, CPU, H100, T4
from vanilla_flash.models import gpt2
from vanilla_flash.training import precision


def test_policy_follows_the_hardware():
    assert precision.policy(CPU) == "32-true"
    assert precision.policy(T4) == "16-mixed"
    assert precision.policy(A100) == "bf16-mixed"
    assert precision.policy(H100) == "bf16-mixed"


def test_overrides_are_checked():
    assert precision.policy(A100, "16-mixed") == "16-mixed"
    assert precision.policy(CPU, "bf16-mixed") == "bf16-mixed"
    assert precision.policy(H100, "bf16-true") == "bf16-true"
    for bf16 in ("bf16-mixed", "bf16-true"):
        with pytest.raises(ValueError, match="use 16-mixed"):
            precision.policy(T4, bf16)
    with pytest.raises(ValueError, match="on CPU"):
        precision.policy(CPU, "16-mixed")
    with pytest.raises(ValueError, match="not one of"):
        precision.policy(H100, "fp8")


def test_autocast_keeps_token_ids_integers():
    """The seed's crash: `.to(float16)` on the batch made the ids half and broke the embedding.
    Under the policy's autocast the ids stay int64 and the matmuls run in the low precision."""
    net = gpt2.build("tiny", attn="sdpa")
    ids = torch.randint(0, 50257, (2, 16))
    with precision.autocast("bf16-mixed", "cpu"):
        logits = net(input_ids=ids).logits
    assert ids.dtype == torch.int64 and logits.dtype == torch.bfloat16
    with pytest.raises(RuntimeError, match="(?i)indices|Long|Int"):
        net(input_ids=ids.to(torch.bfloat16))  # what the seed did by hand


def test_autocast_dtype():
    assert precision.autocast_dtype("16-mixed") == torch.float16
    assert precision.autocast_dtype("bf16-mixed") == torch.bfloat16
    assert precision.autocast_dtype("32-true") is None


def test_each_precision_says_what_the_weights_and_the_matmuls_hold():
    """Mixed precision keeps float32 weights and computes under autocast; bf16-true holds the weights in
    bfloat16 and has no autocast: both compute in bfloat16, which the attention backend is chosen for."""
    want = {  # precision: (autocast, weights, compute)
        "32-true": (None, torch.float32, torch.float32),
        "16-mixed": (torch.float16, torch.float32, torch.float16),
        "bf16-mixed": (torch.bfloat16, torch.float32, torch.bfloat16),
        "bf16-true": (None, torch.bfloat16, torch.bfloat16),
    }
    for name, dtypes in want.items():
        got = (precision.autocast_dtype(name), precision.weights_dtype(name), precision.compute_dtype(name))
        assert got == dtypes, name
