"""The project's flash-attn 1.x / 2.x / 4 call code, with flash-attn faked at the import boundary.

The kernels themselves are checked on a real GPU (`python -m vanilla_flash check`, results under
results/h100/); here the layouts, cu_seqlens, unpadding and causal handling around them are.
"""

import dataclasses
import sys

import pytest
import torch
from conftest import break_flash_attn_import
from fake_flash_attn import make_modules
from vanilla_flash.attention import flash_attn
from vanilla_flash.attention import registry as attention
from vanilla_flash.attention.registry import AttentionError, attend
from vanilla_flash.models import gpt2

LIBRARY = {"flash_attn_1": 1, "flash_attn_2": 2, "flash_attn_4": 4}


def install_fake(monkeypatch, name: str) -> list:
    """Backend `name`'s fake library importable and its CUDA-only checks relaxed to CPU; its calls."""
    calls = []
    for mod_name, module in make_modules(LIBRARY[name], calls).items():
        monkeypatch.setitem(sys.modules, mod_name, module)
    relaxed = dataclasses.replace(attention.get(name), cuda_only=False)
    monkeypatch.setitem(attention._REGISTRY, name, relaxed)
    return calls


@pytest.fixture(params=list(LIBRARY))
def fake(request, monkeypatch):
    """Backend name with its fake library (`install_fake`), and its calls."""
    return request.param, install_fake(monkeypatch, request.param)


def qkv(batch=2, heads=3, q_len=20, k_len=None, dim=16):
    k_len = k_len or q_len
    q = torch.randn(batch, heads, q_len, dim)
    k, v = torch.randn(batch, heads, k_len, dim), torch.randn(batch, heads, k_len, dim)
    return q, k, v


@pytest.mark.parametrize("batch", [1, 2])  # batch 1: the reshaped (tokens, heads, dim) view is strided
@pytest.mark.parametrize("causal", [True, False])
def test_matches_eager(fake, causal, batch):
    name, calls = fake
    q, k, v = qkv(batch=batch)
    out = attend(name, q, k, v, causal=causal, scale=0.3)
    ref = attend("eager", q, k, v, causal=causal, scale=0.3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert calls and calls[-1]["causal"] == causal


def test_padding_reaches_the_kernel_as_variable_length(fake):
    name, calls = fake
    q, k, v = qkv(batch=3, q_len=12)
    lengths = torch.tensor([12, 5, 9])
    keep = torch.arange(12)[None, :] < lengths[:, None]
    out = attend(name, q, k, v, causal=True, padding_mask=keep)
    ref = attend("eager", q, k, v, causal=True, padding_mask=keep)
    real = keep[:, :, None, None]
    torch.testing.assert_close(out * real, ref * real, atol=1e-5, rtol=1e-4)
    assert (out[~keep] == 0).all()  # padded positions come back as zeros
    assert calls[-1]["fn"] in ("unpadded", "varlen")
    assert calls[-1]["cu_q"] == [0, 12, 17, 26] and calls[-1]["max_q"] == 12


def test_one_new_token_against_a_cache(fake):
    """Decoding: 1 query, many keys. flash-attn 1.x aligns causal masks top-left, so the call must
    be made non-causal there; 2.x and 4 align bottom-right."""
    name, calls = fake
    q, k, v = qkv(q_len=1, k_len=17)
    out = attend(name, q, k, v, causal=True)
    torch.testing.assert_close(out, attend("eager", q, k, v, causal=True), atol=1e-5, rtol=1e-4)


def test_flash_attn_1_refuses_causal_chunks_it_would_get_wrong(monkeypatch, fake):
    name, _ = fake
    q, k, v = qkv(q_len=4, k_len=9)
    if name == "flash_attn_1":
        with pytest.raises(AttentionError, match="fewer queries than keys"):
            attend(name, q, k, v, causal=True)
    else:
        torch.testing.assert_close(attend(name, q, k, v, causal=True), attend("eager", q, k, v, causal=True))


def test_dropout_is_passed_on_or_refused(fake):
    name, calls = fake
    q, k, v = qkv()
    if name == "flash_attn_4":
        with pytest.raises(AttentionError, match="attn_pdrop=0"):
            attend(name, q, k, v, dropout=0.1)
    else:
        attend(name, q, k, v, dropout=0.1)
        assert calls[-1]["dropout"] == 0.1


def test_gradients_flow_through_the_call_code(fake):
    name, _ = fake
    q, k, v = (t.requires_grad_() for t in qkv())
    attend(name, q, k, v).sum().backward()
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    attend("eager", q2, k2, v2).sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_gpt2_through_transformers(fake):
    """The backend registered into transformers: same loss as eager, padded batches, generation."""
    name, calls = fake
    torch.manual_seed(0)
    net = gpt2.build("tiny", attn="eager").eval()
    ids = torch.randint(0, 1000, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 16:] = 0  # right padding
    with torch.no_grad():
        ref = net(input_ids=ids, attention_mask=mask).logits
        gpt2.set_attention(net, name)
        out = net(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], atol=1e-4, rtol=1e-4)
    assert calls, "transformers did not call the registered backend"
    generated = net.generate(ids[:1, :8], max_new_tokens=5, do_sample=False)
    gpt2.set_attention(net, "eager")
    expected = net.generate(ids[:1, :8], max_new_tokens=5, do_sample=False)
    assert generated.tolist() == expected.tolist()


def test_wrong_major_version_is_named(monkeypatch):
    calls = []
    for mod_name, module in make_modules(2, calls).items():
        monkeypatch.setitem(sys.modules, mod_name, module)
    with pytest.raises(AttentionError, match="installed flash-attn is 2.x"):
        flash_attn.import_flash_attn(1)


def test_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # makes `import flash_attn` fail
    with pytest.raises(AttentionError, match="notebooks/flash_attn_2"):
        flash_attn.import_flash_attn(2)


def test_a_wheel_built_for_another_torch_is_explained(monkeypatch):
    undefined = ImportError("flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi")
    break_flash_attn_import(monkeypatch, undefined, "2.8.3")
    with pytest.raises(AttentionError, match="built for another torch"):
        flash_attn.import_flash_attn(2)


@pytest.mark.parametrize("causal", [True, False])
def test_flash_attn_4_stays_whole_in_a_compiled_graph_and_backpropagates_through_its_own_kernel(monkeypatch, causal):
    """Under torch.compile flash-attn 4 is called through two custom operators: the compiler traces a layer
    calling it without a graph break (fullgraph), and the gradients come from flash-attn 4's backward, matching
    eager attention. In eager mode it is flash-attn 4's own function, as fast as calling it directly."""
    calls = install_fake(monkeypatch, "flash_attn_4")
    q, k, v = (t.requires_grad_() for t in qkv(q_len=24, dim=16))
    layer = torch.compile(lambda q, k, v: attend("flash_attn_4", q, k, v, causal=causal), fullgraph=True,
                          backend="aot_eager")  # fmt: skip
    out = layer(q, k, v)
    out.square().sum().backward()
    grads = [t.grad for t in (q, k, v)]
    assert [c["fn"] for c in calls] == ["fwd", "bwd"] and all(c["causal"] == causal for c in calls)
    q2, k2, v2 = (t.detach().requires_grad_() for t in (q, k, v))
    ref = attend("eager", q2, k2, v2, causal=causal)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    for got, want in zip(grads, (q2.grad, k2.grad, v2.grad), strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    calls.clear()
    attend("flash_attn_4", q2, k2, v2, causal=causal)
    assert [c["fn"] for c in calls] == ["func"]


@pytest.mark.parametrize("causal", [True, False])
def test_flash_attn_4_on_packed_qkv_gives_their_gradient_back_packed(monkeypatch, causal):
    """`attend_packed` hands flash-attn 4 q, k and v as one (batch, seq, 3, heads, head_dim) tensor, as one
    matmul makes them: compiled, its backward writes the three gradients into views of one tensor of that
    layout (nothing stacks them afterwards), and output and gradient match eager attention on the same views;
    in eager mode it is flash-attn 4's own function."""
    calls = install_fake(monkeypatch, "flash_attn_4")
    packed = torch.randn(2, 24, 3, 3, 16, requires_grad=True)
    layer = torch.compile(lambda t: attention.attend_packed("flash_attn_4", t, causal=causal), fullgraph=True,
                          backend="aot_eager")  # fmt: skip
    out = layer(packed)
    out.square().sum().backward()
    assert [c["fn"] for c in calls] == ["fwd", "bwd"]
    dq, dk, dv = calls[1]["into"]
    assert dq._base is not None and dq._base is dk._base is dv._base and dq._base.shape == packed.shape
    again = packed.detach().requires_grad_()
    ref = attend("eager", *again.permute(2, 0, 3, 1, 4), causal=causal)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed.grad, again.grad, atol=1e-4, rtol=1e-4)
    calls.clear()
    attention.attend_packed("flash_attn_4", packed, causal=causal)
    assert [c["fn"] for c in calls] == ["func"]


@pytest.mark.parametrize("name", ["eager", "sdpa", "sdpa_math"])
def test_a_backend_without_a_packed_form_gets_packed_qkv_as_views(name):
    packed = torch.randn(2, 20, 3, 3, 16)
    q, k, v = packed.permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(attention.attend_packed(name, packed), attend(name, q, k, v))
