"""The kernel ladder of notebook 05 on a GPU, into OUT.json:

    python experiments/kernel_ladder/run.py OUT.json [--archs compute_75,native] [--turing-kernel DIR]

Every rung of `vanilla_flash.teach.ladder` built twice, as `compute_75` PTX (a T4's instructions, which the
driver compiles for the GPU at hand) and as this GPU's machine code; each checked against float32 (GPT-2's
head dim and 128, a sequence of 777 that no tile size divides, causal and not), then timed, forward only,
causal fp16, at the three shapes of the ladder's goal, beside naive PyTorch attention, SDPA's kernels and
flash-attn 1.x (whatever build is installed: the goal's is `compute_75` PTX) in the same process. With
`--turing-kernel DIR`, also ssiu/flash-attention-turing built from DIR as `compute_75` PTX (its `fwd(q, k,
v, causal)` takes (batch, seq, heads, head_dim)): a baseline measured beside ours, none of its code used.
The file is written after each part.
"""

from __future__ import annotations

import argparse
import time

import torch
from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import timing
from vanilla_flash.builds import inline
from vanilla_flash.results import provenance
from vanilla_flash.teach import from_scratch, ladder

SHAPES = ((16, 12, 1024, 64), (8, 12, 2048, 64), (4, 16, 4096, 128))  # (batch, heads, seq, head_dim)
CHECKS = ((2, 3, 777, 64, True), (2, 3, 777, 64, False), (2, 3, 777, 128, True), (1, 2, 1024, 128, False))
LIBRARIES = ("sdpa_efficient", "sdpa_flash", "sdpa_cudnn", "flash_attn_1")


def build_turing_kernel(folder: str):
    """ssiu/flash-attention-turing's extension, built from `folder` (its repository, with a CUTLASS
    include folder at csrc/cutlass/include) as compute_75 PTX."""
    from torch.utils.cpp_extension import load

    src = f"{folder}/csrc/flash_attn"
    kinds = [f"{w}_hdim{d}_fp16{c}_sm75.cu" for w in ("fwd", "bwd") for d in (64, 128) for c in ("", "_causal")]
    return load(
        name="flash_attn_turing_ptx75",
        sources=[f"{src}/flash_api.cpp", *(f"{src}/src/flash_{k}" for k in kinds)],
        extra_include_paths=[src, f"{src}/src", f"{folder}/csrc/cutlass/include"],
        extra_cuda_cflags=["-O3", "--use_fast_math", "-std=c++17", "--expt-relaxed-constexpr",
                           inline.gencode("compute_75")],
        verbose=False,
    )  # fmt: skip


def time_shape(shape, modules: dict, turing, machine) -> dict:
    """Forward ms and relative error against float32 at one shape (causal fp16): naive attention, the
    library backends that run here, ssiu's Turing kernel if built, and every rung of every build."""
    batch, heads, seq, d = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(batch, heads, seq, d, device="cuda", dtype=torch.float16, generator=g) for _ in range(3))
    kernels = {"naive": lambda: from_scratch.naive_attention(q, k, v, True)}
    for name in LIBRARIES:
        if attention.why_not(name, machine, dtype=torch.float16, head_dim=d) is None:
            kernels[name] = lambda name=name: attention.attend(name, q, k, v, causal=True).transpose(1, 2)
    if turing is not None:
        qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
        kernels["ssiu_turing"] = lambda: turing.fwd(qt, kt, vt, True)[0].transpose(1, 2)
    for arch, module in modules.items():
        for name in ladder.NAMES:
            kernels[f"{name}@{arch}"] = lambda m=module, n=name: ladder.forward(m, n, q, k, v, True)[0]
    return ladder.time_kernels(q, k, v, kernels)


def build_modules(names, archs, result: dict, out: str) -> dict:
    """Rungs `names` built for each of `archs` ({arch: module}), each build's time or error recorded in
    `result["builds"]` and the file written after each."""
    modules = {}
    for arch in archs:
        start = time.perf_counter()
        try:
            modules[arch] = ladder.build(names, arch=arch)
            result["builds"].append({"arch": arch, "seconds": round(time.perf_counter() - start, 1), "ok": True})
        except Exception as err:
            result["builds"].append({"arch": arch, "ok": False, "error": str(err)[-3000:]})
        provenance.write_json(out, result)
    return modules


def time_every_shape(result: dict, out, time_shape, *args) -> None:
    """`time_shape(shape, *args)` at every shape of SHAPES, each row added to `result` and written to `out`
    as it comes."""
    for shape in SHAPES:
        result["times"].append(row := time_shape(shape, *args))
        print(row["shape"], row["ms"], flush=True)
        provenance.write_json(out, result)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--archs", default="compute_75,native")
    parser.add_argument("--turing-kernel", help="the folder of ssiu/flash-attention-turing, CUTLASS included")
    parser.add_argument("--build-only", action="store_true", help="build (into torch's extension cache), then stop")
    args = parser.parse_args()
    major, minor = torch.cuda.get_device_capability()
    archs = [f"{major}{minor}" if a == "native" else a for a in args.archs.split(",")]
    result = {"kind": "kernel_ladder", **provenance.provenance(), "rungs": [r.__dict__ for r in ladder.RUNGS]}
    result["builds"], result["checks"], result["times"] = [], [], []
    modules = build_modules(ladder.NAMES, archs, result, args.out)
    turing = None
    if args.turing_kernel:
        start = time.perf_counter()
        try:
            turing = build_turing_kernel(args.turing_kernel)
            result["builds"].append({"arch": "compute_75", "what": "ssiu/flash-attention-turing", "ok": True,
                                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        except Exception as err:
            result["builds"].append({"what": "ssiu/flash-attention-turing", "ok": False, "error": str(err)[-3000:]})
    if args.build_only:
        return
    machine = env.probe()
    result["flash_attn"] = machine.flash_attn

    for arch, module in modules.items():
        for name in ladder.NAMES:
            for batch, heads, seq, d, causal in CHECKS:
                try:
                    row = ladder.check(module, name, batch, heads, seq, d, causal)
                except Exception as err:
                    row = {"rung": name, "error": timing.failure_status(err)}
                result["checks"].append({"arch": arch, **row})
                print(
                    arch,
                    name,
                    row.get("shape"),
                    row.get("causal"),
                    row.get("rel_err"),
                    row.get("error", ""),
                    flush=True,
                )
    provenance.write_json(args.out, result)

    time_every_shape(result, args.out, time_shape, modules, turing, machine)


if __name__ == "__main__":
    main()
