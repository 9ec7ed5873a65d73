"""`mlp: fused` on a GPU, into OUT.json:
    python3 tools/gpu/fused_mlp_check.py OUT.json
1. `build`: the C++ extension compiled (`fused_mlp._compiled`), and how long that took;
2. `check`: each operator against PyTorch on GPT-2 124M's shapes in bf16 (fresh random inputs; the
   relative error of each output against the same computed in float32), and `FusedMLP`'s five
   gradients against autograd's;
3. `timing_ms`: the MLP's forward + backward at 16384 positions, fused against PyTorch's (addmm, GELU,
   addmm) under torch.compile (`timing.timeit`: medians of CUDA-event timings).
On a machine without a GPU it runs the same steps on a small size with the operators replaced by
their PyTorch definitions (tests/test_fused_mlp.py), to check the script itself.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from vanilla_flash import fused_mlp, machine_report, timing

gpu = torch.cuda.is_available()
device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
rows, width = (16384, 768) if gpu else (64, 32)
result = {"kind": "fused_mlp_check", **machine_report.provenance(), "rows": rows, "width": width}


def save() -> None:
    with open(sys.argv[1], "w") as out:
        out.write(json.dumps(result, indent=1, default=str) + "\n")


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


if gpu:
    begin = time.perf_counter()
    try:
        fused_mlp._compiled()
        result["build"] = {"ok": True, "seconds": round(time.perf_counter() - begin, 1)}
    except Exception as err:
        result["build"] = {"ok": False, "error": f"{type(err).__name__}: {err}"[-2000:]}
        save()
        raise
else:  # the operators' PyTorch definitions, as the tests use them
    sys.path.insert(0, "tests")
    import test_fused_mlp

    fused_mlp.gelu_linear, fused_mlp.gelu_linear_dgrad = test_fused_mlp.gelu_linear, test_fused_mlp.gelu_linear_dgrad
print(json.dumps(result.get("build")), flush=True)

gen = torch.Generator(device).manual_seed(0)
x = torch.randn(rows, width, device=device, generator=gen).to(dtype)
w1 = (torch.randn(width, 4 * width, device=device, generator=gen) * 0.02).to(dtype)
b1 = (torch.randn(4 * width, device=device, generator=gen) * 0.1).to(dtype)
w2 = (torch.randn(4 * width, width, device=device, generator=gen) * 0.02).to(dtype)
b2 = (torch.randn(width, device=device, generator=gen) * 0.1).to(dtype)
grad_y = torch.randn(rows, width, device=device, generator=gen).to(dtype)

# 2. each operator against the same in float32, then the whole MLP's gradients against autograd's
pre32 = x.float() @ w1.float() + b1.float()
act, pre = fused_mlp.gelu_linear(x, w1.t().contiguous(), b1)
check = {"gelu_linear": {"pre": rel_err(pre, pre32), "act": rel_err(act, F.gelu(pre32, approximate="tanh"))}}
pre_ref = pre.float().requires_grad_()
slope = torch.autograd.grad(F.gelu(pre_ref, approximate="tanh").sum(), pre_ref)[0]
grad_pre32 = (grad_y.float() @ w2.float().t()) * slope
grad_pre, grad_b1 = fused_mlp.gelu_linear_dgrad(grad_y, w2.t().contiguous(), pre)
check["gelu_linear_dgrad"] = {"grad_pre": rel_err(grad_pre, grad_pre32),
                              "grad_bias": rel_err(grad_b1, grad_pre32.sum(0))}  # fmt: skip
leaves = [t.clone().requires_grad_() for t in (x, w1, b1, w2, b2)]
fused_mlp.FusedMLP.apply(*leaves).backward(grad_y)
reference = [t.float().clone().requires_grad_() for t in (x, w1, b1, w2, b2)]
xr, w1r, b1r, w2r, b2r = reference
(F.gelu(xr @ w1r + b1r, approximate="tanh") @ w2r + b2r).backward(grad_y.float())
check["FusedMLP_grads"] = {name: rel_err(a.grad, b.grad) for name, a, b in
                           zip(("x", "w1", "b1", "w2", "b2"), leaves, reference, strict=True)}  # fmt: skip
result["check"] = check
print(json.dumps(check), flush=True)
save()


# 3. forward + backward of the MLP, fused against PyTorch's under torch.compile
def torch_mlp(x, w1, b1, w2, b2):
    return torch.addmm(b2, F.gelu(torch.addmm(b1, x, w1), approximate="tanh"), w2)


def timed(fn) -> float:
    """Median milliseconds of one forward + backward (`timing.timeit`: CUDA events on a GPU)."""
    leaves = [t.clone().requires_grad_() for t in (x, w1, b1, w2, b2)]
    return round(timing.timeit(lambda: fn(*leaves).backward(grad_y), warmup=3, repeats=20), 4)


result["timing_ms"] = {"torch_compiled": timed(torch.compile(torch_mlp)), "fused": timed(fused_mlp.FusedMLP.apply),
                       "fused_compiled": timed(torch.compile(fused_mlp.FusedMLP.apply))}  # fmt: skip
print(json.dumps(result["timing_ms"]), flush=True)
save()
