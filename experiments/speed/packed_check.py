"""flash-attn 4 on q, k, v packed as one matmul makes them (`registry.attend_packed`) against the same on
three views (`registry.attend`), both under torch.compile, on GPT-2's attention (batch 32, seq 1024, 12 heads,
head dim 64, bf16, causal), into OUT.json:
    python3 experiments/speed/packed_check.py OUT.json
- `error`: each form's output and packed gradient against float32 attention (SDPA's math kernel) on the same
  inputs, as the largest absolute error relative to the reference's largest value; and the two forms against
  each other (the same kernels: they should agree exactly);
- `ms`: one forward + backward of each form (CUDA events, median of 20), with the gradient reaching the packed
  tensor: the views' form stacks the three gradients by a copy, the packed form writes them in place.
Needs a Hopper GPU and flash-attn 4.
"""

import statistics
import sys

import torch
from vanilla_flash.attention import registry as attention
from vanilla_flash.results import provenance

result = {"kind": "packed_check", **provenance.provenance(), "shape": [32, 1024, 3, 12, 64], "dtype": "bfloat16"}
gen = torch.Generator("cuda").manual_seed(0)
packed = torch.randn(*result["shape"], device="cuda", generator=gen, dtype=torch.bfloat16)
grad_out = torch.randn(32, 1024, 12, 64, device="cuda", generator=gen, dtype=torch.bfloat16)
forms = {
    "packed": torch.compile(lambda t: attention.attend_packed("flash_attn_4", t, causal=True)),
    "views": torch.compile(lambda t: attention.attend("flash_attn_4", *t.permute(2, 0, 3, 1, 4), causal=True)),
}


def run(fn, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.detach().requires_grad_()
    out = fn(inputs)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), inputs.grad


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).abs().max() / want.float().abs().max())


reference = run(lambda t: attention.attend("sdpa_math", *t.permute(2, 0, 3, 1, 4), causal=True), packed.float())
outputs = {name: run(fn, packed) for name, fn in forms.items()}
result["error"] = {
    **{
        f"{name}_vs_float32": {"out": relative(o, reference[0]), "grad": relative(g, reference[1])}
        for name, (o, g) in outputs.items()
    },
    "packed_vs_views": {
        "out": relative(*[o[0] for o in outputs.values()]),
        "grad": relative(*[o[1] for o in outputs.values()]),
    },
}
print(result["error"], flush=True)
result["ms"] = {}
for name, fn in forms.items():
    times = []
    for i in range(25):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        run(fn, packed)
        end.record()
        torch.cuda.synchronize()
        if i >= 5:
            times.append(begin.elapsed_time(end))
    result["ms"][name] = round(statistics.median(times), 4)
result["ms"]["packed_over_views"] = round(result["ms"]["packed"] / result["ms"]["views"], 4)
print(result["ms"], flush=True)
provenance.write_json(sys.argv[1], result)
