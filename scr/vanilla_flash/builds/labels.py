"""What a flash-attn build holds, written into its version, and the rule for which GPU runs what.

A build made by `vanilla_flash.builds.sources` carries a PEP 440 local label: 1.0.9+hd64.sm75 has the
head-dim-64 kernels as sm75 machine code; 1.0.9+hd64x128.ptx75 the head dim 64 and 128 kernels as
compute_75 PTX; 2.8.3+hd64.sm90 flash-attn 2's head-dim-64 kernels for sm90, without the features GPT-2
does not use (`edits.FA2_LEFT_OUT`). No "hd" part: every head dim, as flash-attn ships it.

`machine_code_runs(code, gpu)` is the one rule of which architecture's code a GPU runs: machine code
of the same major version and no newer minor one (sm80 runs on sm86, not on sm90), PTX of an older
or equal one (the driver compiles it when the library loads). The attention registry reads a build's
label to refuse a call it has no kernel for; the source builds use the rule to choose what to build.
"""

from __future__ import annotations

import torch

from vanilla_flash import targets, versions

KERNEL_HEAD_DIMS = {1: (32, 64, 128), 2: (32, 64, 96, 128, 192, 256)}  # head dim d runs on the first >= d


def build_label(archs: list[str], head_dims: list[int] | None) -> str:
    """The local version label of a build of `archs` ("75", "compute_75") and `head_dims` (None: all)."""
    parts = [f"hd{'x'.join(map(str, sorted(head_dims)))}"] if head_dims else []
    sass = sorted(a for a in archs if not a.startswith("compute_"))
    ptx = sorted(a.removeprefix("compute_") for a in archs if a.startswith("compute_"))
    parts += [f"sm{'x'.join(sass)}"] if sass else []
    parts += [f"ptx{'x'.join(ptx)}"] if ptx else []
    return ".".join(parts)


def build_of(version: str | None) -> dict | None:
    """What an installed flash-attn 1.x or 2.x build holds, read from its version's label (None:
    unlabelled, built elsewhere: nothing known)."""
    if not version or "+" not in version or versions.major(version) not in (1, 2):
        return None
    major = versions.major(version)
    built = {"major": major, "head_dims": list(KERNEL_HEAD_DIMS[major]), "sass": [], "ptx": [], "minimal": False}
    for part in version.split("+", 1)[1].split("."):
        for key, prefix in (("head_dims", "hd"), ("sass", "sm"), ("ptx", "ptx")):
            if part.startswith(prefix) and part[len(prefix) :].replace("x", "").isdigit():
                built[key] = [int(x) for x in part[len(prefix) :].split("x")]
                built["minimal"] |= key == "head_dims"
    return built if built["sass"] or built["ptx"] else None


def machine_code_runs(code: int, gpu: int) -> bool:
    """Whether machine code for architecture `code` (e.g. 80) runs on a GPU of architecture `gpu`
    (e.g. 86): the same major version, and no newer minor one."""
    return code // 10 == gpu // 10 and code <= gpu


def runs_on(built: dict, arch: int) -> list[int]:
    """The architectures of `built` whose code runs on a GPU of `arch` (e.g. 86): its machine code
    (`machine_code_runs`), else PTX for an older or equal one."""
    sass = [s for s in built["sass"] if machine_code_runs(s, arch)]
    return sass or [p for p in built["ptx"] if p <= arch]


def build_cannot(built: dict, cc: float, dtype, head_dim: int | None) -> str | None:
    """Why this flash-attn build cannot run a call here (None: it can). The Turing build (sm75 or
    compute_75) has no bfloat16 kernels; a build of some head dims has no others."""
    arch, major = round(cc * 10), built["major"]
    option = f"fa{major}_archs"
    rebuild = f'rebuild it for this GPU (02_build with {option}: ["{arch}"])'
    usable = runs_on(built, arch)
    if not usable:
        return (
            f"the installed flash-attn {major}.x was built for {built['sass'] or built['ptx']} only, not sm{arch}: "
            f"{rebuild}"
        )
    if dtype == torch.bfloat16 and not targets.supports_bfloat16(max(usable) / 10):
        return (
            f"the installed flash-attn 1.x is the Turing build ({usable}): it has no bfloat16 kernels; "
            f"use float16 or {rebuild}"
        )
    if head_dim is not None:
        kernel = next((k for k in KERNEL_HEAD_DIMS[major] if head_dim <= k), None)
        if kernel is not None and kernel not in built["head_dims"]:
            return (
                f"the installed flash-attn {major}.x has the head-dim {built['head_dims']} kernels only, and head dim "
                f"{head_dim} needs the {kernel} one: rebuild with fa{major}_head_dims including {kernel}"
            )
        if major == 2 and built["minimal"] and head_dim % 32:
            return (
                f"the installed flash-attn 2.x build leaves out head dims that are not a multiple of 32 (it was "
                f"built without flash-attn's uneven-head-dim code), so not {head_dim}: use sdpa_flash or rebuild it"
            )
    return None
