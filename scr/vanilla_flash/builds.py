"""Building flash-attn from source, quickly, with a visible timed log, and only what is needed.

- `build_fa1()` builds 1.0.9 from its source archive into a wheel: ninja checked, MAX_JOBS from
  cores and RAM (`max_jobs`), only the GPU architectures asked for (`restrict_archs`: sm75 on a T4,
  or compute_75 PTX) and, if asked, only the kernels of some head dims (`restrict_sources`: head dim
  64 for GPT-2), the log streamed and kept, the time measured (`build.json` beside the log). What
  was built is written into the wheel's version (`flash_attn_backends.fa1_label`); the wheel lands
  in `install`'s cache, so the next session installs it in seconds. `dry_run=True` prints the plan.
- `build_fa1_extension()` builds one of flash-attn 1.x's fused extensions (flash-attn's own GPT
  model uses them) from the same source, with a build script written here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from vanilla_flash import flash_attn_backends as fab
from vanilla_flash.errors import BuildError
from vanilla_flash.install import FA1_VERSION, build_tag, cached_wheel, newest_wheel

GIB_PER_NVCC_JOB = 4  # flash-attn's CUDA files take a few GiB each to compile


def max_jobs(cores: int | None = None, ram_gib: float | None = None) -> int:
    """Parallel compiler jobs: one per core, but at most one per 4 GiB of RAM (more runs out of
    memory and the build dies halfway, as on Colab's 12 GiB)."""
    cores = cores or os.cpu_count() or 1
    ram_gib = ram_gib if ram_gib is not None else _ram_gib()
    return max(1, min(cores, int(ram_gib // GIB_PER_NVCC_JOB)))


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 8.0


def ninja_ok() -> bool:
    """`ninja --version` runs (without ninja, torch builds one file at a time: hours)."""
    try:
        return subprocess.run(["ninja", "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


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
// Written by vanilla_flash.builds.restrict_sources: the kernels this build of flash-attn 1.0.9 leaves
// out, so that a call needing one stops with a message instead of an undefined symbol or a crash.
#include <torch/extension.h>
#include "fmha.h"

#define VF_LEFT_OUT(what) TORCH_CHECK(false, "this flash-attn 1.0.9 build has no ", what, " kernels (it was " \\
    "built with head dims {built} only): rebuild it with fa1_head_dims including the one you need " \\
    "(vanilla_flash.builds.build_fa1(..., head_dims=[...]))")
{functions}
"""
_FA1_SIGNATURES = {
    "fwd": "void run_fmha_fwd_hdim{d}(Launch_params<FMHA_fprop_params> &launch_params)",
    "bwd": "void run_fmha_bwd_hdim{d}(FMHA_dgrad_params &params, cudaStream_t stream, const bool configure)",
}
_FA1_BLOCK_SPARSE = {
    "fmha_block_fprop_fp16_kernel.sm80.cu":
        "void run_fmha_block_fp16_sm80(Launch_params<FMHA_fprop_params> &launch_params, const bool configure)",
    "fmha_block_dgrad_fp16_kernel_loop.sm80.cu":
        "void run_fmha_block_dgrad_fp16_sm80(const FMHA_dgrad_params &params, cudaStream_t stream)",
}  # fmt: skip


def fa1_kernels_for(head_dims: list[int]) -> list[int]:
    """The kernel head dims (32, 64, 128) that calls with `head_dims` run on."""
    return sorted({next(k for k in fab.FA1_KERNEL_HEAD_DIMS if d <= k) for d in head_dims})


def restrict_sources(setup_py: str | os.PathLike, head_dims: list[int]) -> list[str]:
    """Edit flash-attn 1.x's setup.py so it compiles only the kernels for `head_dims` (and none of
    the block-sparse ones, which GPT-2 does not use), adding a file that stands in for the rest with
    a clear error; returns the CUDA files left."""
    path = Path(setup_py)
    text = path.read_text()
    keep = fa1_kernels_for(head_dims)
    functions = []
    for d in fab.FA1_KERNEL_HEAD_DIMS:
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


@dataclass
class BuildResult:
    wheel: Path | None
    seconds: float
    log: Path
    cached: bool = False
    dry_run: bool = False


def build_fa1(
    cache_dir: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    archs: list[str] | None = None,
    head_dims: list[int] | None = None,
    jobs: int | None = None,
    work_dir: str | os.PathLike = "build/flash-attn-1",
    dry_run: bool = False,
    echo=print,
) -> BuildResult:
    """Build a flash-attn 1.0.9 wheel into `cache_dir/<build tag>/` (or reuse one there).

    `archs` ("75", or "compute_75" for PTX) and `head_dims` (e.g. [64] for GPT-2: only those kernels,
    no block-sparse ones) make the build smaller and faster; what was built is written into the
    wheel's version (`flash_attn_backends.fa1_label`), so a cached wheel is reused only for the same
    build and a call it cannot run is refused with the way to rebuild. `source` is the sdist
    (.tar.gz) or an unpacked source folder; without it pip downloads the archive from PyPI. The
    build log streams through `echo` and is kept in `work_dir/build.log`.
    """
    work = Path(work_dir)
    log_path = work / "build.log"
    label = fab.fa1_label(archs or ["75", "80", "90"], head_dims)
    hit = cached_wheel(cache_dir, version=f"{FA1_VERSION}+{label}")
    if hit:
        echo(f"cached wheel: {hit} (built earlier for this torch/CUDA/Python): nothing to build")
        return BuildResult(hit, 0.0, log_path, cached=True)
    jobs = jobs or max_jobs()
    ninja = "found" if ninja_ok() else "MISSING"
    kernels = f"head dims {fa1_kernels_for(head_dims)}" if head_dims else "every head dim (32, 64, 128)"
    echo(f"plan: flash-attn {FA1_VERSION} from source, architectures {archs or 'all (75, 80, 90)'}, {kernels}, "
         f"MAX_JOBS={jobs} ({os.cpu_count()} cores, {_ram_gib():.0f} GiB RAM), ninja {ninja}")  # fmt: skip
    if dry_run:
        echo("dry run: no CUDA compiler here, nothing built")
        return BuildResult(None, 0.0, log_path, dry_run=True)
    if not ninja_ok():
        raise BuildError("ninja is not installed: `pip install ninja` first (without it the build takes hours)")
    import torch.utils.cpp_extension as ext

    if not ext.CUDA_HOME:
        raise BuildError("no CUDA toolkit (nvcc) found: flash-attn 1.x can only be built on a machine with CUDA")
    work.mkdir(parents=True, exist_ok=True)
    src = _unpack_source(source, work, echo)
    if archs:
        echo(f"compiling for {arch_labels(restrict_archs(src / 'setup.py', archs))} only")
    if head_dims:
        echo(f"compiling {', '.join(restrict_sources(src / 'setup.py', head_dims))} only")
    return _pip_wheel(src, cache_dir, "flash_attn", f"flash-attn {FA1_VERSION}", jobs, log_path, echo,
                      env={"FLASH_ATTN_LOCAL_VERSION": label})  # fmt: skip


def _pip_wheel(project: Path, cache_dir, package: str, label: str, jobs: int, log_path: Path, echo,
               env: dict | None = None) -> BuildResult:  # fmt: skip
    """`pip wheel` of `project` into `cache_dir/<build tag>/` with MAX_JOBS=`jobs`, timed, logged."""
    out = Path(cache_dir) / build_tag()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-build-isolation",
        "--no-deps",
        "-v",
        "-w",
        str(out),
        str(project),
    ]
    start = time.perf_counter()
    status = _run_logged(cmd, log_path, {**os.environ, "MAX_JOBS": str(jobs), **(env or {})}, echo)
    seconds = time.perf_counter() - start
    if status != 0:
        raise BuildError(f"{label} build failed (exit {status}) after {seconds:.0f} s; log: {log_path}")
    wheel = newest_wheel(out, package)
    echo(f"built {wheel} in {seconds / 60:.1f} min")
    facts = {"package": label, "wheel": wheel.name, "seconds": round(seconds, 1), "max_jobs": jobs,
             "cores": os.cpu_count(), "ram_gib": round(_ram_gib(), 1)}  # fmt: skip
    log_path.with_name("build.json").write_text(json.dumps(facts, indent=1) + "\n")  # beside the log
    return BuildResult(wheel, seconds, log_path)


def _unpack_source(source, work: Path, echo) -> Path:
    if source and Path(source).is_dir():
        return Path(source)
    if not source:
        echo(f"downloading the flash-attn {FA1_VERSION} source archive from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", f"flash-attn=={FA1_VERSION}", "-d", str(work)], check=True)  # fmt: skip
        source = next(work.glob("flash_attn-*.tar.gz"))
    with tarfile.open(source) as tar:
        tar.extractall(work, filter="data")
    return next(p.parent for p in work.glob("*/setup.py"))


def _run_logged(cmd: list[str], log_path: Path, env: dict, echo) -> int:
    """Run `cmd`, writing every line to `log_path` and echoing compiler progress lines."""
    with log_path.open("w") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                     text=True, env=env) as proc:  # fmt: skip
        for line in proc.stdout:
            log.write(line)
            if line.startswith("[") and "/" in line.split("]")[0]:  # ninja: "[12/47] nvcc ..."
                echo(line.split(" ", 1)[0] + " " + line.rsplit("/", 1)[-1].strip()[:80])
        return proc.wait()


# flash-attn 1.x's optional CUDA extensions: module name -> (folder in the source tree, extra libraries).
# The PyPI archive carries their sources but not their build scripts; `build_fa1_extension` writes one.
EXTENSIONS = {
    "fused_dense_lib": ("csrc/fused_dense_lib", ["cublasLt"]),
    "xentropy_cuda_lib": ("csrc/xentropy", []),
    "rotary_emb": ("csrc/rotary", []),
    "dropout_layer_norm": ("csrc/layer_norm", []),
}
_NVCC_FLAGS = ["-O3", "--use_fast_math", "--expt-relaxed-constexpr", "--expt-extended-lambda",
               "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__",
               "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
               "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__"]  # fmt: skip
_SETUP_TEMPLATE = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name={name!r},
    version="1.0.9",
    ext_modules=[CUDAExtension({name!r}, {sources!r}, include_dirs=[{folder!r}], libraries={libraries!r},
                               extra_compile_args={{"cxx": ["-O3"], "nvcc": {nvcc!r}}})],
    cmdclass={{"build_ext": BuildExtension}},
)
"""


EXTENSION_NOTES = {
    "fused_dense_lib": "linear layers with bias and GELU through cuBLASLt (fused_bias_fc, fused_mlp); still a CUDA "
                       "extension in flash-attn 2.x, and still optional",
    "xentropy_cuda_lib": "the cross-entropy loss; flash-attn 2.x has it in Triton (ops/triton/cross_entropy.py)",
    "rotary_emb": "rotary position embeddings (GPT-2 does not use them); Triton in 2.x (ops/triton/rotary.py)",
    "dropout_layer_norm": "dropout + residual add + LayerNorm, about sixty CUDA files; Triton in 2.x "
                          "(ops/triton/layer_norm.py)",
}  # fmt: skip


def extension_plan(names: list[str] | None = None) -> str:
    """What each of flash-attn 1.x's fused extensions does, and which of them would be built."""
    names = names or []
    lines = [f"{'build' if n in names else 'skip '}  {n:<19} {EXTENSION_NOTES[n]}" for n in EXTENSIONS]
    if not names:
        lines.append('(none asked for: set fa1_extensions, e.g. ["fused_dense_lib", "xentropy_cuda_lib"])')
    return "\n".join(lines)


def build_fa1_extension(
    name: str,
    source: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    *,
    archs: list[str] | None = None,
    jobs: int | None = None,
    work_dir: str | os.PathLike = "build/flash-attn-1-extensions",
    dry_run: bool = False,
    echo=print,
) -> BuildResult:
    """Build one of flash-attn 1.x's fused extensions (see `EXTENSIONS`) from flash-attn 1.0.9's
    source (an unpacked folder, the .tar.gz, or None: download it) into a wheel in
    `cache_dir/<build tag>/`, timed, with its log; reuse a cached one."""
    if name not in EXTENSIONS:
        raise BuildError(f"unknown extension {name!r}; choose from {', '.join(EXTENSIONS)}")
    work = Path(work_dir) / name
    log_path = work / "build.log"
    hit = cached_wheel(cache_dir, package=name)
    if hit:
        echo(f"cached wheel: {hit}")
        return BuildResult(hit, 0.0, log_path, cached=True)
    folder, libraries = EXTENSIONS[name]
    if dry_run:
        arch_list = ", sm_".join(archs or ["75", "80", "90"])
        echo(f"plan: {name} from {folder}, sm_{arch_list}, MAX_JOBS={jobs or max_jobs()}; dry run: nothing built")
        return BuildResult(None, 0.0, log_path, dry_run=True)
    if source is None or not Path(source).is_dir():
        source = _unpack_source(source, Path(work_dir), echo)
    src = (Path(source) / folder).resolve()
    # `*_old.cu` are earlier kernels kept in the tree that upstream's setup.py does not compile (they
    # no longer match the headers); building them fails, so they are left out the same way
    sources = sorted(str(p) for p in [*src.glob("*.cpp"), *src.glob("*.cu")] if not p.stem.endswith("_old"))
    if not sources:
        raise BuildError(f"no sources in {src}: pass the unpacked flash-attn 1.0.9 source folder")
    archs = archs or ["75", "80", "90"]
    nvcc = _NVCC_FLAGS + [f for a in archs for f in ("-gencode", f"arch=compute_{a},code=sm_{a}")]
    work.mkdir(parents=True, exist_ok=True)
    (work / "setup.py").write_text(_SETUP_TEMPLATE.format(name=name, sources=sources, folder=str(src),
                                                          libraries=libraries, nvcc=nvcc))  # fmt: skip
    jobs = jobs or max_jobs()
    echo(f"building {name}: {len(sources)} files from {folder}, sm_{', sm_'.join(archs)}, MAX_JOBS={jobs}")
    return _pip_wheel(work, cache_dir, name, name, jobs, log_path, echo)


def extension_note() -> str:
    return (
        "flash-attn's own GPT model can use four extra CUDA extensions (fused_dense_lib, xentropy, rotary, "
        "layer_norm). They are not built here: the Hugging Face GPT-2 this project trains needs none of them, "
        "later flash-attn versions replaced them with Triton kernels, and layer_norm alone is about sixty CUDA "
        "files: on Colab's 2 cores a student's session once ended before its build did."
    )
