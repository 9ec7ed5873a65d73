"""Do transformers' GPT-2 and the vanilla model take the same training step on this GPU? Into OUT.json:
    python3 experiments/speed/grad_match.py OUT.json
On the H200 (torch 2.11, cuDNN 9.19, transformers 5.17) the two models' loss curves parted in `bench
speed` (results/h200/speed.json) although on a CPU they agree to 1e-4. One difference is known:
transformers 5.17 under torch.compile hands the attention an explicit boolean causal mask, where the
vanilla model asks for `is_causal`. This measures, from the same weights and the same batch:
1. `sdpa`: the attention op alone, each SDPA kernel with `is_causal=True` and with the equivalent
   boolean mask: output and dq, dk, dv against float32 math;
2. `models`: one step's loss and gradients of each model / backend / compile case against
   transformers' GPT-2 with eager attention in float32 (cosine similarity of all gradients, the
   largest relative error of a parameter's gradient, the loss difference), and whether a mask reached
   the attention function.
On a machine without a GPU it runs a tiny model with the CPU's kernels, to check the script itself.
"""

import copy
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from vanilla_flash.attention import sdpa
from vanilla_flash.models import gpt2
from vanilla_flash.models import vanilla as vanilla_gpt
from vanilla_flash.results import provenance

gpu = torch.cuda.is_available()
device = "cuda" if gpu else "cpu"
result = {"kind": "grad_match", **provenance.provenance()}


def save() -> None:
    provenance.write_json(sys.argv[1], result)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-30))


# 1. the attention op alone
b, h, t, d = (8, 12, 1024, 64) if gpu else (2, 2, 64, 16)
gen = torch.Generator(device).manual_seed(0)
q, k, v = (torch.randn(b, h, t, d, device=device, generator=gen) for _ in range(3))
grad_out = torch.randn(b, h, t, d, device=device, generator=gen)
causal_mask = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None].expand(b, 1, t, t)


def run_sdpa(dtype, kernel, masked):
    x = [a.detach().to(dtype).requires_grad_() for a in (q, k, v)]  # new leaves, each run
    with sdpa_kernel(kernel):
        out = F.scaled_dot_product_attention(*x, attn_mask=causal_mask if masked else None, is_causal=not masked)
    out.backward(grad_out.to(dtype))
    return [out.detach(), *(a.grad for a in x)]


reference = run_sdpa(torch.float32, SDPBackend.MATH, False)
kernels = ["MATH"] + (["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"] if gpu else [])
result["sdpa"] = []
for kernel in kernels:
    for masked in (False, True):
        row = {"kernel": kernel, "causal_by": "mask" if masked else "is_causal", "shape": [b, h, t, d]}
        try:
            got = run_sdpa(torch.bfloat16 if gpu else torch.float32, getattr(SDPBackend, kernel), masked)
            row.update({name: rel(g, r) for name, g, r in zip(("out", "dq", "dk", "dv"), got, reference, strict=True)})
            row["nan"] = any(bool(torch.isnan(g).any()) for g in got)
        except RuntimeError as err:
            row["error"] = str(err)[:200]
        result["sdpa"].append(row)
        print(json.dumps(row), flush=True)
save()

# 2. one training step of each model
size, seq, batch = ("124M", 1024, 8) if gpu else ("tiny", 64, 2)
torch.manual_seed(0)
base = gpt2.build(size, attn="eager", seq_len=seq).to(device)
ids = torch.randint(0, 50257, (batch, seq), generator=torch.Generator().manual_seed(1)).to(device)
masks_seen: list[bool] = []
spied = sdpa.sdpa_forward


def spy(module, query, key, value, attention_mask, *args, **kwargs):
    masks_seen.append(attention_mask is not None)
    return spied(module, query, key, value, attention_mask, *args, **kwargs)


sdpa.sdpa_forward = spy  # every forced SDPA backend of ours calls it: record whether a mask came


def step(impl: str, attn: str, compiled: bool, bf16: bool) -> tuple[float, dict]:
    model = copy.deepcopy(base)
    gpt2.set_attention(model, attn)
    if impl == "vanilla":
        model = vanilla_gpt.VanillaGPT.from_hf(model, loss="chunked")
    forward = torch.compile(model) if compiled else model
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        loss = forward(input_ids=ids, labels=ids).loss
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


ref_loss, ref_grads = step("hf", "eager", False, False)
cases = [("hf", "eager", True), ("hf", "sdpa_math", True), ("vanilla", "sdpa_math", True),
         ("vanilla", "sdpa_math", False)]  # fmt: skip
if gpu:
    cases = [
        ("hf", "sdpa_cudnn", True), ("hf", "sdpa_cudnn", False), ("hf", "sdpa_efficient", True),
        ("hf", "eager", True), ("vanilla", "sdpa_cudnn", True), ("vanilla", "sdpa_cudnn", False),
        ("vanilla", "sdpa_efficient", True),
    ]  # fmt: skip
result["models"] = {"reference": {"impl": "hf", "attn": "eager", "compile": False, "dtype": "float32",
                                  "loss": ref_loss, "size": size, "seq": seq, "batch": batch}, "rows": []}  # fmt: skip
for impl, attn, compiled in cases:
    torch._dynamo.reset()
    masks_seen.clear()
    row = {"impl": impl, "attn": attn, "compile": compiled, "dtype": "bfloat16" if gpu else "float32"}
    try:
        loss, grads = step(impl, attn, compiled, gpu)
        flat = torch.cat([grads[n].float().flatten() for n in ref_grads])
        flat_ref = torch.cat([g.float().flatten() for g in ref_grads.values()])
        errors = {n: rel(grads[n], g) for n, g in ref_grads.items()}
        worst = max(errors, key=errors.get)
        row.update({"loss": loss, "loss_diff": loss - ref_loss,
                    "grad_cosine": float(F.cosine_similarity(flat, flat_ref, dim=0)),
                    "worst_param": worst, "worst_rel_err": errors[worst],
                    "median_rel_err": sorted(errors.values())[len(errors) // 2],
                    "mask_reached_attention": any(masks_seen) if masks_seen else None})  # fmt: skip
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"[:300]
    result["models"]["rows"].append(row)
    print(json.dumps(row), flush=True)
    save()
