"""Building flash-attn from source, quickly, with a visible timed log, and only what GPT-2 needs.

- `build_fa1()` builds 1.0.9 from its source archive into a wheel; `build_fa2()` does the same for
  2.x (`FA2_VERSION`), for torch versions that no release publishes a wheel for. Both: ninja
  checked, MAX_JOBS from cores and RAM (`max_jobs`), only the GPU architectures asked for (1.x:
  `restrict_archs`, sm75 on a T4 or compute_75 PTX; 2.x: FLASH_ATTN_CUDA_ARCHS) and, if asked, only
  the kernels of some head dims (64 for GPT-2): 1.x `restrict_sources`, a C++ file standing in for
  the kernels left out; 2.x `restrict_fa2_sources`, its head-dim switch rewritten and its own
  switches for features GPT-2 does not use turned off (`FA2_LEFT_OUT`). A call the build cannot run
  stops with a message that says how to rebuild, never an undefined symbol. The log is streamed and
  kept, the time measured (`build.json` beside the log); what was built is written into the wheel's
  version (`labels.build_label`); the wheel lands in `install`'s cache, so the next
  session installs it in seconds. `dry_run=True` prints the plan.
- The C++ standard follows torch (`cxx_standard`): torch 2.13 and newer need C++20.
- flash-attn 1.x's fused extensions are built by `vanilla_flash.builds.fused`.
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

from vanilla_flash import versions
from vanilla_flash.builds import labels
from vanilla_flash.builds.install import FA1_VERSION, FA2_VERSION, build_tag, cached_wheel, newest_wheel
from vanilla_flash.errors import BuildError

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
// Written by vanilla_flash.builds.sources.restrict_sources: the kernels this build of flash-attn 1.0.9 leaves
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
    "fmha_block_fprop_fp16_kernel.sm80.cu":
        "void run_fmha_block_fp16_sm80(Launch_params<FMHA_fprop_params> &launch_params, const bool configure)",
    "fmha_block_dgrad_fp16_kernel_loop.sm80.cu":
        "void run_fmha_block_dgrad_fp16_sm80(const FMHA_dgrad_params &params, cudaStream_t stream)",
}  # fmt: skip


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
        raise BuildError(f"flash-attn {FA2_VERSION} has no kernels for compute capability {cc} "
                         f"(it compiles for {', '.join(FA2_ARCHS)})")  # fmt: skip
    return fits[-1]


_FA2_HEADDIM_SWITCH = re.compile(r"#define HEADDIM_SWITCH\(HEADDIM, \.\.\.\).*?\}\(\)\n", re.S)


def fa2_headdim_switch(keep: list[int]) -> str:
    """flash-attn 2's HEADDIM_SWITCH (static_switch.h) with only the kernels in `keep`: a head dim
    whose kernel was left out stops with a message instead of an undefined symbol."""
    built = ", ".join(map(str, keep))
    lines = [f'#define VF_LEFT_OUT(D) TORCH_CHECK(false, "this flash-attn {FA2_VERSION} build has no head dim " #D '
             f'" kernels (it was built with head dims {built} only): rebuild it with fa2_head_dims including " #D '
             '" (vanilla_flash.builds.sources.build_fa2(..., head_dims=[...]))")',
             "#define HEADDIM_SWITCH(HEADDIM, ...)", "  [&] {", "    if (false) {"]  # fmt: skip
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
    text = re.sub(r'\n\s*"csrc/flash_attn/src/flash_\w+?_hdim(\d+)_\w+\.cu",',
                  lambda m: m.group(0) if int(m.group(1)) in keep else "", text)  # fmt: skip
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
    return _cuda_files(setup)


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
    wheel's version (`labels.build_label`), so a cached wheel is reused only for the same
    build and a call it cannot run is refused with the way to rebuild. `source` is the sdist
    (.tar.gz) or an unpacked source folder; without it pip downloads the archive from PyPI. The
    build log streams through `echo` and is kept in `work_dir/build.log`.
    """
    work = Path(work_dir)
    log_path = work / "build.log"
    label = labels.build_label(archs or ["75", "80", "90"], head_dims)
    jobs = jobs or max_jobs()

    def plan() -> str:
        kernels = f"head dims {kernels_for(head_dims)}" if head_dims else "every head dim (32, 64, 128)"
        return f"architectures {archs or 'all (75, 80, 90)'}, {kernels}"

    done = _cached_or_planned(cache_dir, FA1_VERSION, label, jobs, plan, log_path, dry_run, echo)
    if done:
        return done
    src = _source_to_build(source, work, FA1_VERSION, echo)
    if archs:
        echo(f"compiling for {arch_labels(restrict_archs(src / 'setup.py', archs))} only")
    files = restrict_sources(src / "setup.py", head_dims) if head_dims else _cuda_files(src / "setup.py")
    if head_dims:
        echo(f"compiling {', '.join(files)} only")
    set_cxx_standard(src / "setup.py")
    what = {"archs": archs or ["75", "80", "90"], "head_dims": head_dims or [], "cuda_files": len(files)}
    return pip_wheel(src, cache_dir, "flash_attn", f"flash-attn {FA1_VERSION}", jobs, log_path, echo,
                     env={"FLASH_ATTN_LOCAL_VERSION": label}, what=what)  # fmt: skip


def build_fa2(
    cache_dir: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    archs: list[str] | None = None,
    head_dims: list[int] | None = None,
    jobs: int | None = None,
    work_dir: str | os.PathLike = "build/flash-attn-2",
    dry_run: bool = False,
    echo=print,
) -> BuildResult:
    """Build a flash-attn 2 wheel into `cache_dir/<build tag>/` (or reuse one there), for torch
    versions no release publishes a wheel for (`install.fa2_path`).

    `archs` (from `FA2_ARCHS`; None: all of them, as flash-attn ships it) and `head_dims` ([64] for
    GPT-2: 12 CUDA files instead of 72, without `FA2_LEFT_OUT`) make the build smaller and faster;
    both are written into the wheel's version, e.g. 2.8.3+hd64.sm90. `source` is the sdist
    (.tar.gz) or an unpacked source folder (None: download it from PyPI).
    """
    archs = list(archs or FA2_ARCHS)
    if unknown := [a for a in archs if a not in FA2_ARCHS]:
        raise BuildError(f"flash-attn {FA2_VERSION} compiles for {', '.join(FA2_ARCHS)}, not {', '.join(unknown)} "
                         "(an sm86 or sm89 GPU runs the sm80 code: ask for 80)")  # fmt: skip
    work = Path(work_dir)
    log_path = work / "build.log"
    label = labels.build_label(archs, head_dims)
    jobs = jobs or max_jobs()

    def plan() -> str:
        kernels = (f"head dims {kernels_for(head_dims, 2)} without {', '.join(FA2_LEFT_OUT).lower()}" if head_dims
                   else "every head dim (32 to 256) and feature")  # fmt: skip
        return f"{arch_labels(archs)}, {kernels}"

    done = _cached_or_planned(cache_dir, FA2_VERSION, label, jobs, plan, log_path, dry_run, echo)
    if done:
        return done
    src = _source_to_build(source, work, FA2_VERSION, echo)
    files = restrict_fa2_sources(src, head_dims) if head_dims else _cuda_files(src / "setup.py")
    if head_dims:
        echo(f"compiling {', '.join(files)} only")
    set_cxx_standard(src / "setup.py")
    what = {"archs": archs, "head_dims": head_dims or [], "cuda_files": len(files)}
    # one nvcc thread per architecture of a file, as many as the cores left over by MAX_JOBS allow
    threads = max(1, min(len(archs), (os.cpu_count() or 1) // jobs))
    # FORCE_BUILD: its setup.py would otherwise first look for a release wheel of this label (there is none)
    env = {"FLASH_ATTN_CUDA_ARCHS": ";".join(archs), "FLASH_ATTN_LOCAL_VERSION": label, "NVCC_THREADS": str(threads),
           "FLASH_ATTENTION_FORCE_BUILD": "TRUE"}  # fmt: skip
    return pip_wheel(src, cache_dir, "flash_attn", f"flash-attn {FA2_VERSION}", jobs, log_path, echo, env, what)


def _cuda_files(setup_py: Path) -> list[str]:
    return re.findall(r'"csrc/flash_attn/src/(\w+\.cu)"', setup_py.read_text())


def _cached_or_planned(cache_dir, version: str, label: str, jobs: int, plan, log_path: Path, dry_run: bool,
                       echo) -> BuildResult | None:  # fmt: skip
    """The cached wheel of exactly this build (flash-attn `version`+`label`), or, printed first, the
    plan (`plan()`: what is compiled) and, on a dry run, nothing more; None: go on and build."""
    hit = cached_wheel(cache_dir, version=f"{version}+{label}")
    if hit:
        echo(f"cached wheel: {hit} (built earlier for this torch/CUDA/Python): nothing to build")
        return BuildResult(hit, 0.0, log_path, cached=True)
    echo(f"plan: flash-attn {version} from source, {plan()}, MAX_JOBS={jobs} ({os.cpu_count()} cores, "
         f"{_ram_gib():.0f} GiB RAM), ninja {'found' if ninja_ok() else 'MISSING'}")  # fmt: skip
    if dry_run:
        echo("dry run: no CUDA compiler here, nothing built")
        return BuildResult(None, 0.0, log_path, dry_run=True)
    return None


def _source_to_build(source, work: Path, version: str, echo) -> Path:
    """flash-attn `version`'s unpacked source in `work`, once ninja and a CUDA toolkit are known to be here."""
    if not ninja_ok():
        raise BuildError("ninja is not installed: `pip install ninja` first (without it the build takes hours)")
    import torch.utils.cpp_extension as ext

    if not ext.CUDA_HOME:
        raise BuildError(f"no CUDA toolkit (nvcc) found: flash-attn {version} can only be built on a machine with CUDA")
    work.mkdir(parents=True, exist_ok=True)
    return unpack_source(source, work, echo, f"flash-attn=={version}")


def pip_wheel(project: Path, cache_dir, package: str, label: str, jobs: int, log_path: Path, echo,
              env: dict | None = None, what: dict | None = None) -> BuildResult:  # fmt: skip
    """`pip wheel` of `project` into `cache_dir/<build tag>/` with MAX_JOBS=`jobs`, timed, logged;
    `build.json` beside the log says what was built (`what`: archs, head dims, files), on what, in
    how long, and whether it worked (a `results/builds.json` row: `tools/record_build.py`)."""
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
    wheel = newest_wheel(out, package) if status == 0 else None
    facts = {"package": label, **(what or {}), "cores": os.cpu_count(), "ram_gib": round(_ram_gib(), 1),
             "max_jobs": jobs, "seconds": round(seconds, 1), "ok": status == 0,
             "wheel": wheel and wheel.name}  # fmt: skip
    log_path.with_name("build.json").write_text(json.dumps(facts, indent=1) + "\n")  # beside the log
    if status != 0:
        raise BuildError(f"{label} build failed (exit {status}) after {seconds:.0f} s; log: {log_path}")
    echo(f"built {wheel} in {seconds / 60:.1f} min")
    return BuildResult(wheel, seconds, log_path)


def unpack_source(source, work: Path, echo, requirement: str = f"flash-attn=={FA1_VERSION}") -> Path:
    """The unpacked source folder: `source` itself if it is one, else the archive `source` (None:
    `requirement`'s archive, downloaded from PyPI) unpacked into `work`."""
    if source and Path(source).is_dir():
        return Path(source)
    if not source:
        echo(f"downloading the {requirement} source archive from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", requirement, "-d", str(work)], check=True)  # fmt: skip
        source = next(work.glob("flash_attn-*.tar.gz"))
    with tarfile.open(source) as tar:
        tar.extractall(work, filter="data")
    return next(p.parent for p in work.glob("*/setup.py"))


def ninja_progress(line: str) -> str | None:
    """ "[3/13] flash_bwd_hdim64_fp16_sm80.cu" for ninja's line of a compile step (pip -v indents it),
    None for any other line."""
    step = line.strip()
    if not (step.startswith("[") and "/" in step.split("]")[0]):
        return None
    source = re.search(r"\s-c\s+(\S+\.(?:cu|cpp))", step) or re.search(r"(\S+\.(?:cu|cpp))\b", step)
    return step.split(" ", 1)[0] + " " + (Path(source.group(1)).name if source else step.rsplit("/", 1)[-1][:80])


def _run_logged(cmd: list[str], log_path: Path, env: dict, echo) -> int:
    """Run `cmd`, writing every line to `log_path` and echoing compiler progress lines."""
    with log_path.open("w") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                     text=True, env=env) as proc:  # fmt: skip
        for line in proc.stdout:
            log.write(line)
            if progress := ninja_progress(line):
                echo(progress)
        return proc.wait()
