"""The backward pass of the kernel ladder (part 2) on a GPU, into OUT.json:

    python experiments/kernel_ladder/backward.py OUT.json [--archs compute_75,native] [--turing-kernel DIR]

The last forward rung with each backward rung of `vanilla_flash.teach.ladder` (plain, then on the tensor
cores), built as `compute_75` PTX and natively; dQ, dK and dV checked against autograd of float32 attention
(head dims 64 and 128, 777 tokens, causal and not), then forward + backward timed (causal fp16) at the
ladder's three shapes beside naive attention, SDPA's kernels, flash-attn 1.x and, with `--turing-kernel`,
ssiu/flash-attention-turing built as `compute_75` PTX, all in one process. Written after each part.
"""

from __future__ import annotations

import argparse

import torch
from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import timing
from vanilla_flash.results import provenance
from vanilla_flash.teach import from_scratch, ladder

from experiments.kernel_ladder.run import LIBRARIES, build_modules, build_turing_kernel, time_every_shape

CHECKS = ((2, 3, 777, 64, True), (2, 3, 777, 64, False), (2, 3, 777, 128, True), (1, 2, 1024, 128, False))
FORWARD = ladder.NAMES[-1]


def inputs(batch, heads, seq, d, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(batch, heads, seq, d, device="cuda", dtype=torch.float16, generator=g) for _ in range(4)]


def rel(x, ref):
    return ((x.float() - ref).norm() / ref.norm()).item()


def autograd_call(fn, q, k, v, dout):
    """forward + backward of `fn(q, k, v)` (output as (batch, heads, seq, head_dim)), returning the grads."""
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
    return torch.autograd.grad(fn(*leaves), leaves, dout)


def time_shape(shape, modules: dict, turing, machine) -> dict:
    batch, heads, seq, d = shape
    q, k, v, dout = inputs(batch, heads, seq, d)
    ref = ladder.reference_gradients(q, k, v, dout, True)
    calls = {"naive": lambda: autograd_call(lambda a, b, c: from_scratch.naive_attention(a, b, c, True), q, k, v, dout)}
    for name in LIBRARIES:
        if attention.why_not(name, machine, dtype=torch.float16, head_dim=d) is None:
            fn = lambda a, b, c, name=name: attention.attend(name, a, b, c, causal=True).transpose(1, 2)  # noqa: E731
            calls[name] = lambda fn=fn: autograd_call(fn, q, k, v, dout)
    if turing is not None:
        qt, kt, vt, dt = (x.transpose(1, 2).contiguous() for x in (q, k, v, dout))

        def ssiu():
            out, lse = turing.fwd(qt, kt, vt, True)
            return [g.transpose(1, 2) for g in turing.bwd(qt, kt, vt, out, lse, dt, True)[:3]]

        calls["ssiu_turing"] = ssiu
    for arch, module in modules.items():
        for rung in ladder.BACKWARD_RUNGS:

            def ours(m=module, n=rung.name):
                out, lse = ladder.forward(m, FORWARD, q, k, v, True)
                return ladder.backward(m, n, q, k, v, out, lse, dout, True)

            calls[f"{rung.name}@{arch}"] = ours
    row = {"shape": f"B{batch} H{heads} S{seq} D{d}", "causal": True, "ms": {}, "rel_err": {}}
    for name, call in calls.items():
        try:
            grads = call()
            row["rel_err"][name] = max(rel(g, r) for g, r in zip(grads, ref, strict=True))
            row["ms"][name] = timing.timeit(call)
        except Exception as err:
            row["ms"][name], row["rel_err"][name] = None, timing.failure_status(err)
        timing.free_memory()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--archs", default="compute_75,native")
    parser.add_argument("--turing-kernel", help="the folder of ssiu/flash-attention-turing, CUTLASS included")
    args = parser.parse_args()
    major, minor = torch.cuda.get_device_capability()
    archs = [f"{major}{minor}" if a == "native" else a for a in args.archs.split(",")]
    result = {"kind": "kernel_ladder_backward", **provenance.provenance(), "forward": FORWARD}
    result |= {"rungs": [r.__dict__ for r in ladder.BACKWARD_RUNGS], "builds": [], "checks": [], "times": []}
    modules = build_modules([FORWARD, *(r.name for r in ladder.BACKWARD_RUNGS)], archs, result, args.out)
    turing = build_turing_kernel(args.turing_kernel) if args.turing_kernel else None
    machine = env.probe()
    result["flash_attn"] = machine.flash_attn
    for arch, module in modules.items():
        for rung in ladder.BACKWARD_RUNGS:
            for batch, heads, seq, d, causal in CHECKS:
                try:
                    row = ladder.check_backward(module, rung.name, batch, heads, seq, d, causal)
                except Exception as err:
                    row = {"rung": rung.name, "error": timing.failure_status(err)}
                result["checks"].append({"arch": arch, **row})
                print(arch, row, flush=True)
    provenance.write_json(args.out, result)
    time_every_shape(result, args.out, time_shape, modules, turing, machine)


if __name__ == "__main__":
    main()
