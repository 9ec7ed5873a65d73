"""Every backend that runs on CPU computes the same attention as eager, forward and backward."""

import types

import pytest
import torch
from vanilla_flash.attention import registry as attention
from vanilla_flash.attention import sdpa
from vanilla_flash.attention.registry import AttentionError, attend
from vanilla_flash.bench import check

CPU_BACKENDS = ["sdpa", "sdpa_math", "sdpa_flash", "auto"]
SHAPES = [(2, 2, 64, 16), (1, 4, 33, 32), (3, 1, 7, 64), (2, 12, 128, 64)]


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_matches_eager_outputs_and_gradients(name, shape, causal):
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    ref_q, ref_k, ref_v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    grad = torch.randn(shape[0], shape[2], shape[1], shape[3])
    scale = 1.0 / shape[-1]  # not the default, so a backend that ignores `scale` fails
    out = attend(name, q, k, v, causal=causal, scale=scale)
    ref = attend("eager", ref_q, ref_k, ref_v, causal=causal, scale=scale)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    out.backward(grad)
    ref.backward(grad)
    for a, b in ((q, ref_q), (k, ref_k), (v, ref_v)):
        torch.testing.assert_close(a.grad, b.grad, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["sdpa", "sdpa_math", "auto"])
def test_padding_masks_are_honoured(name):
    q, k, v = (torch.randn(2, 2, 10, 8) for _ in range(3))
    keep = torch.tensor([[True] * 10, [True] * 6 + [False] * 4])
    out = attend(name, q, k, v, padding_mask=keep)
    # the short sequence alone gives the same result as inside the padded batch
    alone = attend("eager", q[1:, :, :6], k[1:, :, :6], v[1:, :, :6])
    torch.testing.assert_close(out[1, :6], alone[0], atol=1e-5, rtol=1e-4)


def test_the_cpu_flash_kernel_refuses_padding_and_dropout():
    q, k, v = (torch.randn(1, 2, 8, 8) for _ in range(3))
    with pytest.raises(AttentionError, match="padding mask"):
        attend("sdpa_flash", q, k, v, padding_mask=torch.ones(1, 8, dtype=torch.bool))
    with pytest.raises(AttentionError, match="no dropout"):
        attend("sdpa_flash", q, k, v, dropout=0.1)


def test_dropout_is_applied_when_asked():
    q, k, v = (torch.randn(1, 2, 32, 8) for _ in range(3))
    for name in ("eager", "sdpa", "sdpa_math"):
        assert not torch.allclose(attend(name, q, k, v, dropout=0.5), attend(name, q, k, v))


def test_cuda_kernels_refuse_cpu_tensors_with_the_fix():
    q = torch.randn(1, 2, 8, 8)
    for name in ("sdpa_efficient", "sdpa_cudnn", "flash_attn_1", "flash_attn_2", "flash_attn_4"):
        with pytest.raises(AttentionError, match="CUDA GPUs only.*'sdpa' on CPU"):
            attend(name, q, q, q)


class FakeCudaTensor(types.SimpleNamespace):
    """What `_check_call` reads of a tensor, for a tensor that would live on a GPU."""

    is_cuda = True


@pytest.mark.parametrize(
    ("name", "cc", "dtype", "head_dim", "message"),
    [
        ("flash_attn_2", 9.0, torch.float32, 64, "float16/bfloat16 tensors, but got float32.*precision"),
        ("flash_attn_1", 7.5, torch.bfloat16, 64, "bfloat16 needs compute capability >= 8.0.*16-mixed"),
        ("sdpa_cudnn", 9.0, torch.bfloat16, 256, "head dims up to 128, not 256"),
        ("flash_attn_4", 9.0, torch.bfloat16, 192, "head dims up to 128"),
    ],
)
def test_gpu_call_checks_name_the_fix(monkeypatch, name, cc, dtype, head_dim, message):
    monkeypatch.setattr(attention, "_capability", lambda index: cc)
    q = FakeCudaTensor(dtype=dtype, device=torch.device("cuda", 0), shape=(1, 2, 8, head_dim))
    with pytest.raises(AttentionError, match=message):
        attention._check_call(attention.get(name), q, 0.0)


def test_the_check_command_passes_on_cpu_and_records_skips():
    rows = check.check_kernels(["sdpa", "sdpa_flash", "flash_attn_2"], [torch.float32], check.CPU_SHAPES)
    by_status = {(r.backend, r.status) for r in rows}
    assert ("sdpa", "pass") in by_status and ("flash_attn_2", "skip") in by_status
    assert all(r.status != "FAIL" for r in rows)
    assert all(r.out_rel_err < 1e-4 for r in rows if r.status == "pass")


def test_the_check_fails_a_wrong_backend(monkeypatch):
    """A backend that ignores the causal mask must be reported as FAIL, not pass."""
    wrong = attention.get("sdpa_math")

    def ignores_causal(module, q, k, v, mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        return sdpa.eager_forward(module, q, k, v, None, dropout, scaling, is_causal=False)

    monkeypatch.setitem(attention._REGISTRY, "sdpa_math", type(wrong)(**{**wrong.__dict__, "forward": ignores_causal}))
    rows = check.check_kernels(["sdpa_math"], [torch.float32], check.CPU_SHAPES[:1])
    assert rows[0].status == "FAIL" and rows[0].out_rel_err > 1e-2


def test_plain_causal_attention_gets_no_mask_tensor_and_everything_else_gets_transformers_mask():
    """transformers 5.17 builds a (batch, 1, seq, seq) boolean mask under torch.compile even without
    padding; our SDPA backends take none where `is_causal` says the same (training, prefill, one new
    token), and transformers' own where there is padding, a window or a cache offset."""
    from transformers.masking_utils import sdpa_mask

    mask = attention.causal_or_sdpa_mask
    assert mask(2, 64, 64) is None and mask(2, 1, 65, q_offset=64) is None
    padding = torch.ones(2, 64, dtype=torch.bool)
    padding[0, :5] = False
    for built, args, kwargs in (
        (mask(2, 64, 64, attention_mask=padding), (2, 64, 64), {"attention_mask": padding}),
        (mask(2, 64, 64, local_size=8), (2, 64, 64), {"local_size": 8}),
        (mask(2, 4, 68, q_offset=64), (2, 4, 68, 64), {}),
    ):
        expected = sdpa_mask(*args, **kwargs)
        assert built is not None and torch.equal(built, expected)


def test_compiled_transformers_gpt2_sends_no_mask_to_our_sdpa_backends(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa_integration
    from vanilla_flash.models import gpt2

    seen = []
    real = sdpa_integration.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, *args, **kwargs):
        seen.append(attention_mask)
        return real(module, query, key, value, attention_mask, *args, **kwargs)

    monkeypatch.setattr(sdpa_integration, "sdpa_attention_forward", spy)
    torch.manual_seed(0)
    net = gpt2.build("tiny", attn="sdpa_math", seq_len=32, n_layer=1)
    ids = torch.randint(0, 50257, (2, 32))
    eager = net(input_ids=ids, labels=ids).loss
    compiled = torch.compile(net)(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(compiled, eager)
    assert seen and all(m is None for m in seen)


# --- padded batches through transformers' GPT-2: every backend, `auto` included, as eager does


def test_every_backend_matches_eager_on_padded_gpt2_batches_or_refuses_by_name():
    """`auto` used to pick SDPA for a padded batch and then call it without the mask (relative error
    0.136 on CPU): the padding must reach whichever backend runs."""
    rows = check.check_padded_model([*CPU_BACKENDS, "eager"], compiled=(False,))
    assert {(r.backend, r.padding) for r in rows if r.status == "pass"} >= {
        (name, side) for name in ("sdpa", "sdpa_math", "auto", "eager") for side in ("left", "right")
    }
    assert all(r.rel_err < 1e-4 for r in rows if r.status == "pass")
    refused = [r for r in rows if r.status == "skip"]
    assert {r.backend for r in refused} == {"sdpa_flash"} and all("padding mask" in r.note for r in refused)


def test_auto_matches_eager_on_padded_gpt2_batches_under_torch_compile():
    rows = check.check_padded_model(["auto"], compiled=(True,))
    assert [(r.padding, r.status) for r in rows] == [("left", "pass"), ("right", "pass")]


def test_the_padded_check_fails_a_backend_that_drops_the_mask(monkeypatch):
    wrong = attention.get("sdpa_math")

    def drops_mask(module, q, k, v, mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        return wrong.forward(module, q, k, v, None, dropout, scaling, is_causal, **kw)

    monkeypatch.setitem(attention._REGISTRY, "sdpa_math", type(wrong)(**{**wrong.__dict__, "forward": drops_mask}))
    rows = check.check_padded_model(["sdpa_math"], compiled=(False,), sides=("left",))
    assert rows[0].status == "FAIL" and rows[0].rel_err > 1e-2


# --- a library that is installed but broken, a build that lacks the kernel: our words, before the call


def test_an_installed_flash_attn_that_fails_to_import_is_not_available_and_auto_takes_the_next(monkeypatch, caplog):
    from conftest import H100

    broken = H100.__class__(**{**H100.__dict__, "flash_attn_4": "4.0.0b4",
                               "flash_attn_4_error": "AttributeError: module 'cutlass.cute.core' has no "
                                                     "attribute 'ThrMma'"})  # fmt: skip
    reason = attention.why_not("flash_attn_4", broken, dtype=torch.bfloat16, head_dim=64)
    assert "flash-attn-4 4.0.0b4 is installed but cannot be imported" in reason and "ThrMma" in reason
    assert attention.pick(broken, torch.bfloat16, 64) == "sdpa_cudnn"
    monkeypatch.setattr(attention, "_this_machine", lambda: broken)
    attention._auto_choice.cache_clear()
    monkeypatch.setattr(attention, "_SAID_BROKEN", set())
    with caplog.at_level("WARNING", logger="vanilla_flash.attention.registry"):
        assert attention._auto_choice(torch.bfloat16, 64, False, True, False) == "sdpa_cudnn"
        assert attention._auto_choice(torch.bfloat16, 64, False, True, False) == "sdpa_cudnn"
        assert attention._auto_choice(torch.float16, 128, False, True, False) == "sdpa_cudnn"
    attention._auto_choice.cache_clear()
    said = [r.getMessage() for r in caplog.records if "flash_attn_4 cannot run here" in r.getMessage()]
    assert len(said) == 1 and "using sdpa_cudnn" in said[0]


def test_the_probe_records_why_an_installed_library_does_not_import(tmp_path, monkeypatch):
    from vanilla_flash import env

    (tmp_path / "half_broken_lib.py").write_text("import math\nmath.ThrMma\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert env.import_error("json") is None
    assert env.import_error("half_broken_lib").startswith("AttributeError: module 'math' has no attribute")


def test_a_library_that_raises_something_other_than_import_error_is_explained(monkeypatch):
    from conftest import break_flash_attn_import
    from vanilla_flash.attention import flash_attn

    break_flash_attn_import(
        monkeypatch, AttributeError("module 'cutlass.cute.core' has no attribute 'ThrMma'"), "4.0.0b4"
    )
    with pytest.raises(AttentionError, match="flash-attn-4 4.0.0b4 is installed but cannot be imported.*ThrMma"):
        flash_attn.import_flash_attn(4)


def test_a_call_the_installed_build_has_no_kernel_for_is_refused_before_the_call(monkeypatch):
    """flash-attn 2.x built with the head-dim-64 kernels only, called at head dim 48, raised
    flash-attn's own RuntimeError although `why_not` knew the reason."""
    from conftest import H100

    build = H100.__class__(**{**H100.__dict__, "flash_attn": "2.8.3+hd64.sm90"})
    monkeypatch.setattr(attention, "_this_machine", lambda: build)
    monkeypatch.setattr(attention, "_capability", lambda index: 9.0)
    attention._build_cannot.cache_clear()
    q = FakeCudaTensor(dtype=torch.bfloat16, device=torch.device("cuda", 0), shape=(1, 5, 8, 48))
    with pytest.raises(AttentionError, match="flash_attn_2 cannot run this call: .*not a multiple of 32.*48"):
        attention._check_call(attention.get("flash_attn_2"), q, 0.0)
    q64 = FakeCudaTensor(dtype=torch.bfloat16, device=torch.device("cuda", 0), shape=(1, 5, 8, 64))
    attention._check_call(attention.get("flash_attn_2"), q64, 0.0)  # the kernel it has: no error
    attention._build_cannot.cache_clear()
