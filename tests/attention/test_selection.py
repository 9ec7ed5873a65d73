"""Which backend runs where, which one `auto` picks, and the sentences users read when one cannot."""

import dataclasses

import pytest
import torch
from conftest import A10, A100, CPU, H100, L4, T4
from vanilla_flash.attention import registry as attention
from vanilla_flash.attention.registry import pick, why_not
from vanilla_flash.results import provenance


def with_fa(machine, fa=None, fa4=None):
    return dataclasses.replace(machine, flash_attn=fa, flash_attn_4=fa4)


@pytest.mark.parametrize(
    ("machine", "dtype", "seq", "expected"),
    [
        (CPU, "float32", 1024, "sdpa"),
        (CPU, "bfloat16", 1024, "sdpa"),
        (with_fa(T4, "1.0.9"), "float16", 1024, "flash_attn_1"),
        (T4, "float16", 1024, "sdpa_efficient"),
        (with_fa(T4, "2.8.3"), "float16", 1024, "sdpa_efficient"),  # flash-attn 2 does not run on sm75
        (T4, "float32", 1024, "sdpa"),
        (with_fa(A100, "2.8.3"), "bfloat16", 1024, "flash_attn_2"),
        (A100, "bfloat16", 1024, "sdpa_flash"),
        (with_fa(A100, "1.0.9"), "bfloat16", 1024, "sdpa_flash"),
        (A10, "float16", 4096, "sdpa_flash"),
        (L4, "bfloat16", 512, "sdpa_flash"),
        (with_fa(H100, fa4="4.0.0b36"), "bfloat16", 512, "flash_attn_4"),
        (with_fa(H100, fa4="4.0.0b36"), "bfloat16", 8192, "flash_attn_4"),
        (H100, "bfloat16", 8192, "sdpa_cudnn"),
        (with_fa(H100, "1.0.9", "4.0.0b36"), "float16", 4096, "flash_attn_4"),
    ],
)
def test_auto_picks_the_fastest_backend_that_runs(machine, dtype, seq, expected):
    assert pick(machine, dtype, head_dim=64, seq_len=seq) == expected


@pytest.mark.parametrize("machine", [T4, with_fa(T4, "2.8.3", "4.0.0b36")])
@pytest.mark.parametrize("seq", [128, 1024, 16384])
@pytest.mark.parametrize("head_dim", [32, 64, 128])
def test_auto_never_picks_an_ampere_kernel_on_a_t4(machine, seq, head_dim):
    assert pick(machine, "float16", head_dim, seq) not in {"flash_attn_2", "sdpa_flash", "sdpa_cudnn", "flash_attn_4"}


def test_under_torch_compile_auto_keeps_to_the_kernels_the_compiler_sees():
    h100 = with_fa(H100, fa4="4.0.0b36")
    assert pick(h100, "bfloat16", head_dim=64, seq_len=1024, compiled=True) == "sdpa_cudnn"
    assert pick(with_fa(A100, "2.8.3"), "bfloat16", head_dim=64, compiled=True) == "flash_attn_2"


def test_auto_respects_head_dim_limits_and_dropout():
    h100 = with_fa(H100, fa4="4.0.0b36")
    assert pick(h100, "bfloat16", head_dim=256, seq_len=8192) == "sdpa_flash"  # over cuDNN's and FA4's 128
    assert pick(h100, "bfloat16", head_dim=64, seq_len=8192, dropout=True) == "sdpa_cudnn"  # FA4 has no dropout


def test_flash_attn_2_on_a_t4_says_what_to_use_instead():
    reason = why_not("flash_attn_2", with_fa(T4, "2.8.3"))
    assert "compute capability >= 8.0" in reason and "7.5" in reason
    assert "flash_attn_1" in reason and "sdpa_efficient" in reason


def test_bfloat16_on_a_t4_is_refused_with_the_fix():
    reason = why_not("sdpa_efficient", T4, dtype="bfloat16")
    assert "float16" in reason and "7.5" in reason


def test_fp32_to_a_half_precision_kernel_names_the_precision_policy():
    reason = why_not("flash_attn_4", with_fa(H100, fa4="4.0.0b36"), dtype=torch.float32)
    assert "float32" in reason and "bf16-mixed" in reason and "casting" in reason


def test_missing_library_says_how_to_get_it():
    assert "notebooks/flash_attn_1" in why_not("flash_attn_1", T4)
    assert "notebooks/flash_attn_2" in why_not("flash_attn_2", A100)
    assert "pip install flash-attn-4" in why_not("flash_attn_4", H100)
    # flash-attn 1.x installed does not make the 2.x backend available, and the other way round
    assert why_not("flash_attn_2", with_fa(A100, "1.0.9")) is not None
    assert why_not("flash_attn_1", with_fa(A100, "2.8.3")) is not None
    assert why_not("flash_attn_1", with_fa(A100, "1.0.9")) is None


def test_head_dim_over_the_limit_is_refused():
    assert "up to 128" in why_not("sdpa_cudnn", H100, head_dim=256)
    assert "up to 128" in why_not("flash_attn_4", with_fa(H100, fa4="4.0.0b36"), head_dim=192)
    assert why_not("flash_attn_1", with_fa(T4, "1.0.9"), head_dim=128) is not None  # backward needs sm80
    assert why_not("flash_attn_1", with_fa(T4, "1.0.9"), head_dim=128, training=False) is None


def test_cuda_kernels_are_refused_on_cpu_with_the_cpu_alternative():
    for name in ("sdpa_efficient", "sdpa_cudnn", "flash_attn_1", "flash_attn_2", "flash_attn_4"):
        assert "CUDA GPU" in why_not(name, CPU) and "sdpa" in why_not(name, CPU)
    for name in ("eager", "sdpa", "sdpa_math", "sdpa_flash", "auto"):
        assert why_not(name, CPU) is None


def test_flash_attn_4_needs_hopper_or_blackwell():
    assert "9.0" in why_not("flash_attn_4", with_fa(A100, fa4="4.0.0b36"))
    assert why_not("flash_attn_4", with_fa(H100, fa4="4.0.0b36")) is None


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(attention.AttentionError, match="flash_attn_1"):
        attention.get("flash_attn_3000")


def test_report_on_a_simulated_t4_explains_every_backend():
    report = provenance.describe(with_fa(T4, "1.0.9"))
    assert report.backends["flash_attn_1"] is None
    assert report.backends["sdpa_efficient"] is None
    assert "8.0" in report.backends["sdpa_flash"]
    assert report.auto_pick == {"float16": "flash_attn_1"}
    text = str(report)
    assert "Tesla T4 (sm75)" in text and "flash_attn_2" in text
    assert '"capability": [\n      7,\n      5\n    ]' in report.to_json()


def test_report_on_cpu_picks_sdpa():
    report = provenance.describe(CPU)
    assert report.auto_pick == {"float32": "sdpa"}
    assert set(report.backends) == set(attention.names())


def test_auto_keeps_to_pytorchs_head_dim_alignment():
    """SDPA's memory-efficient kernel wants half-precision head dims in multiples of 8 (PyTorch's
    minimum_gemm_alignment): 257 goes to plain sdpa, which falls back to its math kernel."""
    for machine in (A100, T4, with_fa(T4, "1.0.9")):
        assert pick(machine, "float16", head_dim=257) == "sdpa"
        assert "multiple of 8" in why_not("sdpa_efficient", machine, dtype="float16", head_dim=257)
    assert why_not("sdpa_efficient", A100, dtype="float32", head_dim=258) is not None  # 4 on sm80 in fp32
    assert why_not("sdpa_efficient", T4, dtype="float32", head_dim=257) is None
