"""Get the right flash-attn onto this machine, and keep it across Colab sessions.

- `plan(machine)` says what this GPU needs: flash-attn 1.0.9 built from source on Turing (no wheels
  exist), the prebuilt flash-attn 2.x wheel that matches torch/CUDA/C++ ABI/Python on Ampere and
  Ada, the flash-attn-4 wheels on Hopper and Blackwell, nothing on CPU.
- `fa2_wheel()` spells out the name of flash-attn 2's release wheel for this torch.
- `build_fa1()` builds 1.0.9 from its source archive: ninja checked, MAX_JOBS from cores and RAM,
  only the GPU architectures asked for (sm75 on a T4), the log streamed and kept, the time
  measured; the wheel lands in a cache folder (Google Drive on Colab) and `install_cached()` puts it
  back in seconds next session. On a machine that cannot build, `dry_run=True` prints the plan.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vanilla_flash import flash_attn_backends as fab
from vanilla_flash import targets
from vanilla_flash.env import Machine
from vanilla_flash.errors import BuildError

FA1_VERSION = "1.0.9"
FA2_VERSION = "2.8.3"
FA4_REQUIREMENT = "flash-attn-4==4.0.0b36"
FA2_RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download"
GIB_PER_NVCC_JOB = 4  # flash-attn's CUDA files take a few GiB each to compile


@dataclass
class Plan:
    """What this machine needs, in words and as steps."""

    target: str  # a target's name (cpu, t4, ampere, hopper: `vanilla_flash.targets`) or "unsupported"
    package: str | None  # what to install, e.g. "flash-attn 1.0.9 (built from source)"
    backend: str  # the attention backend it enables (or the best that runs without it)
    archs: list[str] = field(default_factory=list)  # CUDA architectures to compile, e.g. ["75"]
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"target: {self.target}",
            f"install: {self.package or 'nothing'}",
            f"attention backend: {self.backend}",
        ]
        lines += [f"  {i}. {s}" for i, s in enumerate(self.steps, 1)]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def plan(machine: Machine, target: str | None = None) -> Plan:
    """What `machine` needs. `target` (t4, ampere, hopper: a notebook set's parameters) asks for
    that set's flash-attn even on a newer GPU, as when the T4 notebooks are run on an H100;
    without it, this GPU's own target decides."""
    if machine.device != "cuda":
        return Plan("cpu", None, "sdpa", steps=["nothing to install: on CPU the model uses PyTorch SDPA"],
                    notes=["flash-attn needs an NVIDIA GPU; the notebooks run here as dry runs"])  # fmt: skip
    cc = machine.cc
    arch = f"{machine.capability[0]}{machine.capability[1]}"
    wanted = targets.get(target) if target and target != "cpu" else machine.target
    if cc < wanted.min_cc:
        why = f"compute capability {cc} is below what the {wanted.name} set needs ({wanted.min_cc})"
        return Plan("unsupported", None, "sdpa", notes=[why])
    if wanted is targets.T4:
        return Plan(
            wanted.name, f"flash-attn {FA1_VERSION} (built from source)", wanted.backend, [arch],
            steps=[f"look for a cached flash_attn-{FA1_VERSION} wheel built for this torch",
                   f"else build it from the PyPI source archive for sm_{arch} only (about 15 minutes on 2 cores)",
                   "install the wheel and check a real kernel call against an fp32 reference"],
            notes=["no flash-attn 2 or 4 on Turing: they need compute capability 8.0 / 9.0"],
        )  # fmt: skip
    if wanted is targets.AMPERE:
        path = fa2_path(machine)
        first = {"installed": "nothing to install", "wheel": f"install the release wheel {path.wheel}",
                 "build": "build flash-attn 2 from source (not done for you: over an hour)"}[path.kind]  # fmt: skip
        return Plan(
            wanted.name, f"flash-attn 2 ({path.kind})", wanted.backend, [arch],
            steps=[first, "check a real kernel call against an fp32 reference"],
            notes=[path.why, "without it, sdpa_flash (FlashAttention-2 inside PyTorch) runs at close to its speed"],
        )  # fmt: skip
    return Plan(
        wanted.name, f"{FA4_REQUIREMENT} (wheels, nothing to compile)", wanted.backend, [arch],
        steps=[f"pip install {FA4_REQUIREMENT}", "check a real kernel call against an fp32 reference"],
        notes=["without it, cuDNN (sdpa_cudnn) is the next fastest (results/h100/attention.json); "
               "under torch.compile `auto` uses cuDNN"],
    )  # fmt: skip


def fa2_wheel(machine: Machine | None = None, *, torch_version: str | None = None, cuda: str | None = None,
              cxx11_abi: bool | None = None, python: str | None = None, version: str = FA2_VERSION) -> str:  # fmt: skip
    """The file name of flash-attn 2's prebuilt release wheel for this torch:
    flash_attn-{ver}+cu{CUDA major}torch{major.minor}cxx11abi{TRUE|FALSE}-cp{py}-cp{py}-linux_x86_64.whl"""
    import torch

    torch_version = torch_version or (machine.torch if machine else torch.__version__)
    cuda = cuda or (machine.cuda if machine else torch.version.cuda) or ""
    if cxx11_abi is None:
        cxx11_abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    python = python or (machine.python if machine else f"{sys.version_info.major}.{sys.version_info.minor}")
    torch_mm = ".".join(torch_version.split("+")[0].split(".")[:2])
    py = "cp" + "".join(python.split(".")[:2])
    return (f"flash_attn-{version}+cu{cuda.split('.')[0]}torch{torch_mm}cxx11abi{str(cxx11_abi).upper()}"
            f"-{py}-{py}-linux_x86_64.whl")  # fmt: skip


def fa2_wheel_url(wheel: str, version: str = FA2_VERSION) -> str:
    return f"{FA2_RELEASES}/v{version}/{wheel}"


@dataclass(frozen=True)
class Fa2Release:
    """The wheels one flash-attn 2 release builds (linux x86_64), by its publishing workflow."""

    version: str
    source: str  # where the matrix below is written
    torch: tuple[str, ...]  # major.minor
    python: tuple[str, ...]
    cuda: tuple[str, ...]  # the CUDA major in the wheel's name
    exclude: tuple[tuple[str, str], ...] = ()  # (torch, python) left out of the matrix

    def has(self, torch_mm: str, python_mm: str, cuda_major: str) -> bool:
        return (torch_mm in self.torch and python_mm in self.python and cuda_major in self.cuda
                and (torch_mm, python_mm) not in self.exclude)  # fmt: skip


# flash-attn 2's release wheels: the matrix of `.github/workflows/publish.yml` at each release tag of
# Dao-AILab/flash-attention, both C++ ABIs. The last tags, v2.8.3 (2025-08-14) and v2.8.3.post1
# (2026-06-10), build for torch 2.4-2.8 with CUDA 12 only: there is no upstream wheel for torch 2.9 or
# newer (Colab's 2.11 among them). The main branch's workflow (2026-03-10) lists torch 2.6-2.10 with
# CUDA 12.9 and 13.0, but no release has been tagged from it.
_FA2_MATRIX = dict(torch=("2.4", "2.5", "2.6", "2.7", "2.8"), python=("3.9", "3.10", "3.11", "3.12", "3.13"),
                   cuda=("12",), exclude=(("2.4", "3.13"),))  # fmt: skip
FA2_PUBLISHED = (
    Fa2Release("2.8.3.post1", "v2.8.3.post1:.github/workflows/publish.yml", **_FA2_MATRIX),
    Fa2Release("2.8.3", "v2.8.3:.github/workflows/publish.yml", **_FA2_MATRIX),
)


@dataclass
class Fa2Path:
    """How this machine gets flash-attn 2, and why."""

    kind: str  # installed | wheel | build
    why: str
    wheel: str | None = None
    url: str | None = None


def fa2_path(machine: Machine) -> Fa2Path:
    """flash-attn 2 for this torch, CUDA, C++ ABI and Python, in this order: the one installed; a
    wheel that a release publishes (`FA2_PUBLISHED`; never a name spelled for a release that has no
    such wheel); else a build from source."""
    if machine.flash_attn_major() == 2:
        return Fa2Path("installed", f"flash-attn {machine.flash_attn} is installed")
    torch_mm = ".".join(machine.torch.split("+")[0].split(".")[:2])
    python_mm = ".".join(machine.python.split(".")[:2])
    cuda_major = (machine.cuda or "").split(".")[0]
    for release in FA2_PUBLISHED:
        if release.has(torch_mm, python_mm, cuda_major):
            abi = machine.cxx11_abi if machine.cxx11_abi is not None else True  # torch 2.7+ wheels: True
            wheel = fa2_wheel(machine, cxx11_abi=abi, version=release.version)
            why = (
                f"flash-attn {release.version} has a wheel for torch {torch_mm}, CUDA {cuda_major}, Python {python_mm}"
            )
            return Fa2Path("wheel", why, wheel, fa2_wheel_url(wheel, release.version))
    newest = FA2_PUBLISHED[0]
    why = (f"no flash-attn 2 release publishes a wheel for torch {torch_mm} with CUDA {cuda_major} and Python "
           f"{python_mm} (the newest, {newest.version}, covers torch {newest.torch[0]}-{newest.torch[-1]}, CUDA "
           f"{'/'.join(newest.cuda)}): it has to be built from source, about 80 CUDA files, over an hour on "
           "16 cores; until it is, sdpa_flash is FlashAttention-2 inside PyTorch")  # fmt: skip
    return Fa2Path("build", why)


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


def cached_wheel(cache_dir: str | os.PathLike, package: str = "flash_attn", version: str = FA1_VERSION,
                 tag: str | None = None) -> Path | None:  # fmt: skip
    """A wheel of `package` `version` in `cache_dir` built for `tag` (see `build_tag()`), if any; a
    `version` with a local label (1.0.9+hd64.sm75) matches only that build."""
    package = package.replace("-", "_")
    folder = Path(cache_dir) / (tag or build_tag())
    hits = sorted(folder.glob(f"{package}-{version}-*.whl" if "+" in version else f"{package}-{version}*.whl"))
    return hits[-1] if hits else None


def usable_fa1_wheel(cache_dir: str | os.PathLike, machine: Machine) -> Path | None:
    """The newest cached flash-attn 1.x wheel for this torch whose kernels run on this GPU."""
    folder = Path(cache_dir) / build_tag(machine)
    for wheel in sorted(folder.glob("flash_attn-1.*.whl"), key=lambda p: p.stat().st_mtime, reverse=True):
        built = fab.fa1_build(wheel.name.split("-")[1])
        if built is None or fab.fa1_build_cannot(built, machine.cc, None, None) is None:
            return wheel
    return None


def newest_wheel(folder: Path, package: str) -> Path | None:
    hits = sorted(Path(folder).glob(f"{package.replace('-', '_')}-*.whl"), key=lambda p: p.stat().st_mtime)
    return hits[-1] if hits else None


def build_tag(machine: Machine | None = None) -> str:
    """A folder name for wheels that only work with this torch, CUDA and Python: a wheel built for
    another torch fails with `undefined symbol` on import."""
    import torch

    torch_version = (machine.torch if machine else torch.__version__).replace("+", "-")
    python = machine.python if machine else f"{sys.version_info.major}.{sys.version_info.minor}"
    cuda = (machine.cuda if machine else torch.version.cuda) or "cpu"
    return f"torch{torch_version}-cuda{cuda}-py{'.'.join(python.split('.')[:2])}"


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
// Written by vanilla_flash.install.restrict_sources: the kernels this build of flash-attn 1.0.9 leaves
// out, so that a call needing one stops with a message instead of an undefined symbol or a crash.
#include <torch/extension.h>
#include "fmha.h"

#define VF_LEFT_OUT(what) TORCH_CHECK(false, "this flash-attn 1.0.9 build has no ", what, " kernels (it was " \\
    "built with head dims {built} only): rebuild it with fa1_head_dims including the one you need " \\
    "(vanilla_flash.install.build_fa1(..., head_dims=[...]))")
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


def pip_install(*args: str, echo=print) -> None:
    """`pip install` that fails loudly (a failing `!pip` in a notebook cell does not fail the cell)."""
    cmd = [sys.executable, "-m", "pip", "install", *args]
    echo("$ " + " ".join(cmd[2:]))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"pip install {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def install_cached(wheel: str | os.PathLike, echo=print) -> None:
    pip_install("--no-deps", str(wheel), echo=echo)


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


def copy_to(wheel: Path, folder: str | os.PathLike) -> Path:
    """Copy a built wheel to another cache (e.g. Google Drive) under the same build tag."""
    dest = Path(folder) / wheel.parent.name
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(wheel, dest))


def ensure(plan_: Plan, *, cache_dir: str | os.PathLike | None = None, echo=print) -> str:
    """Install what `plan_` needs if it is not there yet (a second run is a quick no-op); returns
    what was done, in one sentence."""
    from vanilla_flash import env

    machine = env.probe()
    if plan_.target in ("cpu", "unsupported"):
        return f"nothing to install on this machine; attention runs on {plan_.backend}"
    if plan_.target == "t4":
        if machine.flash_attn_major() == 1:
            return f"flash-attn {machine.flash_attn} is already installed"
        wheel = usable_fa1_wheel(cache_dir, machine) if cache_dir else None
        if not wheel:
            return "no flash-attn 1.x wheel for this torch and GPU cached yet: run the build notebook (02_build) once"
        install_cached(wheel, echo=echo)
        return f"installed the cached {wheel.name} (no rebuild)"
    if plan_.target == "ampere":
        path = fa2_path(machine)
        if path.kind == "installed":
            return f"flash-attn {machine.flash_attn} is already installed"
        if path.kind == "build":
            return f"not installed: {path.why}"
        pip_install("--no-deps", path.url, echo=echo)
        return f"installed {path.wheel} ({path.why})"
    if machine.flash_attn_4:
        return f"flash-attn-4 {machine.flash_attn_4} is already installed"
    pip_install(FA4_REQUIREMENT, echo=echo)
    return f"installed {FA4_REQUIREMENT}"
