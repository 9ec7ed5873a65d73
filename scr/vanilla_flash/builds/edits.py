"""What a source build of flash-attn compiles: the edits made to flash-attn's own build files.

- Only the GPU architectures asked for: 1.x `restrict_archs` (sm75 on a T4, or compute_75 PTX); 2.x
  builds for `fa2_arch_for(cc)` through FLASH_ATTN_CUDA_ARCHS.
- Only the kernels of some head dims (64 for GPT-2): 1.x `restrict_sources`, a C++ file standing in
  for the kernels left out, which stops a call with the way to rebuild; 2.x `restrict_fa2_sources`,
  its head-dim switch rewritten and its own switches for features GPT-2 does not use turned off
  (`FA2_LEFT_OUT`).
- The C++ standard torch's headers need (`cxx_standard`, `set_cxx_standard`): C++20 from torch 2.13.
`vanilla_flash.builds.sources` runs the build.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vanilla_flash import versions
from vanilla_flash.builds import labels
from vanilla_flash.builds.install import FA2_VERSION
from vanilla_flash.errors import BuildError


def restrict_archs(setup_py: str | os.PathLike, archs: list[str]) -> list[str]:
    """Edit flash-attn 1.x's setup.py so it compiles only `archs` (it always adds sm75, sm80 and
    sm90). "75" is machine code for sm_75, what a T4 runs; "compute_75" is PTX alone, which the
    driver compiles when the library loads, for whatever GPU is there (the Turing build run on a
    newer GPU). Returns what is left, written the same way."""

    def keep(m: re.Match) -> str:
        whole, indent, arch = m.group(0), m.group(1), m.group(2)
        if arch in archs:
            return whole
        if f"compute_{arch}" in archs:
            return whole.replace(f"code=sm_{arch}", f"code=compute_{arch}")
        return indent + "pass"

    path = Path(setup_py)
    pattern = r'(\n[ \t]*)cc_flag\.append\("-gencode"\)\n[ \t]*cc_flag\.append\("arch=compute_(\d+),code=sm_\d+"\)'
    text = re.sub(pattern, keep, path.read_text())
    path.write_text(text)
    return [
        arch if code == "sm" else f"compute_{arch}"
        for arch, code in re.findall(r"arch=compute_(\d+),code=(sm|compute)_", text)
    ]


def arch_labels(archs: list[str]) -> str:
    """ "sm_75, compute_75 (PTX)" for ["75", "compute_75"]."""
    return ", ".join(f"{a} (PTX)" if a.startswith("compute_") else f"sm_{a}" for a in archs)


_LEFT_OUT = """\
// Written by vanilla_flash.builds.edits.restrict_sources: the kernels this build of flash-attn 1.0.9 leaves
// out, so that a call needing one stops with a message instead of an undefined symbol or a crash.
#include <torch/extension.h>
#include "fmha.h"

#define VF_LEFT_OUT(what) TORCH_CHECK(false, "this flash-attn 1.0.9 build has no ", what, " kernels (it was " \\
    "built with head dims {built} only): rebuild it with fa1_head_dims including the one you need " \\
    "(vanilla_flash.builds.sources.build_fa1(..., head_dims=[...]))")
{functions}
"""


_FA1_SIGNATURES = {
    "fwd": "void run_fmha_fwd_hdim{d}(Launch_params<FMHA_fprop_params> &launch_params)",
    "bwd": "void run_fmha_bwd_hdim{d}(FMHA_dgrad_params &params, cudaStream_t stream, const bool configure)",
}


_FA1_BLOCK_SPARSE = {
    "fmha_block_fprop_fp16_kernel.sm80.cu": (
        "void run_fmha_block_fp16_sm80(Launch_params<FMHA_fprop_params> &launch_params, const bool configure)"
    ),
    "fmha_block_dgrad_fp16_kernel_loop.sm80.cu": (
        "void run_fmha_block_dgrad_fp16_sm80(const FMHA_dgrad_params &params, cudaStream_t stream)"
    ),
}


def kernels_for(head_dims: list[int], major: int = 1) -> list[int]:
    """The kernel head dims (1.x: 32, 64, 128; 2.x: 32 to 256) that calls with `head_dims` run on."""
    return sorted({next(k for k in labels.KERNEL_HEAD_DIMS[major] if d <= k) for d in head_dims})


def restrict_sources(setup_py: str | os.PathLike, head_dims: list[int]) -> list[str]:
    """Edit flash-attn 1.x's setup.py so it compiles only the kernels for `head_dims` (and none of
    the block-sparse ones, which GPT-2 does not use), adding a file that stands in for the rest with
    a clear error; returns the CUDA files left."""
    path = Path(setup_py)
    text = path.read_text()
    keep = kernels_for(head_dims)
    functions = []
    for d in labels.KERNEL_HEAD_DIMS[1]:
        if d not in keep:
            for kind, signature in _FA1_SIGNATURES.items():
                text = text.replace(f'"csrc/flash_attn/src/fmha_{kind}_hdim{d}.cu",', "")
                functions.append(f'{signature.format(d=d)} {{ VF_LEFT_OUT("head dim {d}"); }}')
    for name, signature in _FA1_BLOCK_SPARSE.items():
        text = text.replace(f'"csrc/flash_attn/src/{name}",', "")
        functions.append(f'{signature} {{ VF_LEFT_OUT("block-sparse"); }}')
    stub = path.parent / "csrc/flash_attn/src/vf_left_out.cpp"
    stub.write_text(_LEFT_OUT.format(built=", ".join(map(str, keep)), functions="\n".join(functions)))
    text = text.replace(
        '"csrc/flash_attn/fmha_api.cpp",', '"csrc/flash_attn/fmha_api.cpp", "csrc/flash_attn/src/vf_left_out.cpp",'
    )
    path.write_text(text)
    return re.findall(r'"csrc/flash_attn/src/(\w+\.cu)"', text)


# flash-attn 2's own compile-time switches (-DFLASHATTENTION_DISABLE_*, commented out in its setup.py) for
# what GPT-2 never calls: ALiBi, logit soft-capping, sliding-window (local) attention, and head dims that
# are not a multiple of 32. Each call that needs one is refused by flash-attn itself ("This flash
# attention build does not support ..."). Dropout stays: training may use it.
FA2_LEFT_OUT = ("ALIBI", "SOFTCAP", "LOCAL", "UNEVEN_K")


FA2_ARCHS = ("80", "90", "100", "120")  # what 2.8.3's setup.py compiles (sm86/sm89 run the sm80 code)


def fa2_arch_for(cc: float) -> str:
    """The architecture of `FA2_ARCHS` to build for a GPU of compute capability `cc`: its own, or the
    one of its major version whose machine code it runs (8.6 and 8.9 run sm80's)."""
    arch = round(cc * 10)
    fits = [a for a in FA2_ARCHS if labels.machine_code_runs(int(a), arch)]
    if not fits:
        raise BuildError(
            f"flash-attn {FA2_VERSION} has no kernels for compute capability {cc} "
            f"(it compiles for {', '.join(FA2_ARCHS)})"
        )
    return fits[-1]


_FA2_HEADDIM_SWITCH = re.compile(r"#define HEADDIM_SWITCH\(HEADDIM, \.\.\.\).*?\}\(\)\n", re.S)


def fa2_headdim_switch(keep: list[int]) -> str:
    """flash-attn 2's HEADDIM_SWITCH (static_switch.h) with only the kernels in `keep`: a head dim
    whose kernel was left out stops with a message instead of an undefined symbol."""
    built = ", ".join(map(str, keep))
    lines = [
        f'#define VF_LEFT_OUT(D) TORCH_CHECK(false, "this flash-attn {FA2_VERSION} build has no head dim " #D '
        f'" kernels (it was built with head dims {built} only): rebuild it with fa2_head_dims including " #D '
        '" (vanilla_flash.builds.sources.build_fa2(..., head_dims=[...]))")',
        "#define HEADDIM_SWITCH(HEADDIM, ...)",
        "  [&] {",
        "    if (false) {",
    ]
    for d in labels.KERNEL_HEAD_DIMS[2]:
        lines.append(f"    }} else if (HEADDIM <= {d}) {{")
        if d in keep:
            lines += [f"      constexpr static int kHeadDim = {d};", "      return __VA_ARGS__();"]
        else:
            lines.append(f"      VF_LEFT_OUT({d});")
    lines += ["    }", "  }()"]
    width = max(map(len, lines[1:])) + 1
    return lines[0] + "\n" + "\n".join(f"{line:<{width}}\\" for line in lines[1:-1]) + "\n" + lines[-1] + "\n"


def restrict_fa2_sources(src: str | os.PathLike, head_dims: list[int]) -> list[str]:
    """Edit flash-attn 2's source tree so it compiles only the kernels for `head_dims` (forward,
    split-KV forward and backward; float16 and bfloat16; causal or not), without the features in
    `FA2_LEFT_OUT`; returns the CUDA files left."""
    src = Path(src)
    keep = kernels_for(head_dims, major=2)
    setup = src / "setup.py"
    text = setup.read_text()
    text = re.sub(
        r'\n\s*"csrc/flash_attn/src/flash_\w+?_hdim(\d+)_\w+\.cu",',
        lambda m: m.group(0) if int(m.group(1)) in keep else "",
        text,
    )
    for feature in FA2_LEFT_OUT:
        text = text.replace(f'# "-DFLASHATTENTION_DISABLE_{feature}",', f'"-DFLASHATTENTION_DISABLE_{feature}",')
    # the same switches for the C++ compiler too: flash_api.cpp, which refuses a call needing what was left
    # out, is not compiled by nvcc; with the switches for nvcc alone such a call would run the kernel
    # without the feature and return a wrong result (seen on the H200: a soft-capped call "ran")
    host = '    compiler_c17_flag=["-O3", "-std=c++17"]'
    if host not in text:
        raise BuildError(f"{setup} does not set its C++ flags as flash-attn {FA2_VERSION} does: is this its source?")
    defines = ", ".join(f'"-DFLASHATTENTION_DISABLE_{feature}"' for feature in FA2_LEFT_OUT)
    text = text.replace(host, f"{host[:-1]}, {defines}]")
    setup.write_text(text)
    switch = src / "csrc/flash_attn/src/static_switch.h"
    header = switch.read_text()
    if not _FA2_HEADDIM_SWITCH.search(header):
        raise BuildError(f"{switch} has no HEADDIM_SWITCH as flash-attn {FA2_VERSION} writes it: is this its source?")
    switch.write_text(_FA2_HEADDIM_SWITCH.sub(lambda _: fa2_headdim_switch(keep), header))
    return cuda_files(setup)


def cxx_standard(torch_version: str | None = None) -> str:
    """The C++ standard torch's headers need: C++20 from torch 2.13 (they refuse C++17), else C++17."""
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    return "c++20" if versions.at_least(torch_version, "2.13") else "c++17"


def set_cxx_standard(setup_py: str | os.PathLike, standard: str | None = None) -> str:
    """Write the C++ standard this torch needs into a flash-attn setup.py (they say C++17)."""
    standard = standard or cxx_standard()
    path = Path(setup_py)
    path.write_text(re.sub(r"std([=:])c\+\+17", lambda m: f"std{m[1]}{standard}", path.read_text()))  # gcc, MSVC
    return standard


def cuda_files(setup_py: Path) -> list[str]:
    return re.findall(r'"csrc/flash_attn/src/(\w+\.cu)"', setup_py.read_text())
