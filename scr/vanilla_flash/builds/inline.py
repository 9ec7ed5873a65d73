"""This package's own CUDA sources (`vanilla_flash/kernels/`: the kernel ladder of notebook 05, whose last
rung is the `from_scratch` attention backend), compiled on this machine with `load_inline`.

`compile_kernels({name: file}, arch)` builds the files into one module: each file in a namespace of its
name, its `forward(q, k, v, causal)` called as `<name>_forward` and its `backward(q, k, v, out, lse, dout,
causal)` as `<name>_backward`; `kernels/common.cuh` is what they share.
`arch` is a GPU's machine code ("90") or PTX alone ("compute_75": only a T4's instructions, which the
driver compiles for whatever GPU loads it). A changed source gets a module of its own name, so an edit
is never hidden by an earlier build.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
# what a kernel file may define, with the arguments of each: `forward(q, k, v, causal)` -> (out, lse),
# `backward(q, k, v, out, lse, dout, causal)` -> (dq, dk, dv)
ENTRIES = {
    "forward": ("torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal", "q, k, v, causal"),
    "backward": (
        "torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor o, torch::Tensor lse, torch::Tensor dout, "
        "bool causal",
        "q, k, v, o, lse, dout, causal",
    ),
}


def gencode(arch: str) -> str:
    """nvcc's flag for `arch`: "90" is machine code for sm_90; "compute_75" is PTX alone, which the
    driver compiles when the module loads, for whatever GPU is there (a T4's build run on an H100)."""
    number = arch.removeprefix("compute_")
    return f"-gencode=arch=compute_{number},code={'compute' if arch.startswith('compute_') else 'sm'}_{number}"


def this_gpu() -> str:
    """The architecture of this machine's GPU, as `gencode` takes it ("75" on a T4)."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"{major}{minor}"


def entries(file: str) -> list[str]:
    """Which of `ENTRIES` the kernel file defines."""
    text = (KERNELS / file).read_text()
    return [entry for entry in ENTRIES if f"std::vector<torch::Tensor> {entry}(" in text]


def module_source(files: dict[str, str]) -> tuple[str, str, list[str]]:
    """The CUDA and C++ sources of one module holding `files` ({name: file in kernels/}), and the names it
    binds (`<name>_forward`, `<name>_backward`)."""
    cuda, cpp, bound = ['#include "common.cuh"'], [], []
    for name, file in files.items():
        cuda += [f"namespace {name} {{", f'#include "{file}"', "}"]
        for entry in entries(file):
            arguments, call = ENTRIES[entry]
            signature = f"std::vector<torch::Tensor> {name}_{entry}({arguments})"
            cuda.append(f"{signature} {{ return {name}::{entry}({call}); }}")
            cpp.append(signature + ";")
            bound.append(f"{name}_{entry}")
    return "\n".join(cuda) + "\n", "\n".join(cpp) + "\n", bound


def compile_kernels(files: dict[str, str], arch: str | None = None, build_dir=None, verbose: bool = False):
    """`files` compiled for `arch` (default: this GPU's machine code) into one module. Needs a CUDA
    toolkit (nvcc) and a GPU's PyTorch."""
    from torch.utils.cpp_extension import load_inline

    arch = arch or this_gpu()
    cuda, cpp, bound = module_source(files)
    texts = "".join((KERNELS / f).read_text() for f in ["common.cuh", *files.values()])
    digest = hashlib.sha1((cuda + texts + arch).encode()).hexdigest()[:10]
    return load_inline(
        name=f"vanilla_flash_kernels_{arch}_{digest}",
        cpp_sources=cpp,
        cuda_sources=cuda,
        functions=bound,
        extra_cuda_cflags=["-O3", "--use_fast_math", "-std=c++17", gencode(arch)],
        extra_include_paths=[str(KERNELS)],
        build_directory=None if build_dir is None else str(build_dir),
        verbose=verbose,
    )
