"""Building flash-attn from source, quickly, with a visible timed log, and only what GPT-2 needs.

- `build_fa1()` builds 1.0.9 from its source archive into a wheel; `build_fa2()` does the same for
  2.x (`FA2_VERSION`), for torch versions that no release publishes a wheel for. Both: ninja
  checked, MAX_JOBS from cores and RAM (`max_jobs`), and only what was asked for, through the edits
  of `vanilla_flash.builds.edits` (the GPU architectures; the kernels of some head dims; the C++
  standard torch needs). A call the build cannot run stops with a message that says how to rebuild,
  never an undefined symbol. The log is streamed and kept, the time measured (`build.json` beside the
  log); what was built is written into the wheel's version (`labels.build_label`); the wheel lands in
  `install`'s cache, so the next session installs it in seconds. `dry_run=True` prints the plan.
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

from vanilla_flash.builds import edits, labels
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
        kernels = f"head dims {edits.kernels_for(head_dims)}" if head_dims else "every head dim (32, 64, 128)"
        return f"architectures {archs or 'all (75, 80, 90)'}, {kernels}"

    done = _cached_or_planned(cache_dir, FA1_VERSION, label, jobs, plan, log_path, dry_run, echo)
    if done:
        return done
    src = _source_to_build(source, work, FA1_VERSION, echo)
    if archs:
        echo(f"compiling for {edits.arch_labels(edits.restrict_archs(src / 'setup.py', archs))} only")
    files = edits.restrict_sources(src / "setup.py", head_dims) if head_dims else edits.cuda_files(src / "setup.py")
    if head_dims:
        echo(f"compiling {', '.join(files)} only")
    edits.set_cxx_standard(src / "setup.py")
    what = {"archs": archs or ["75", "80", "90"], "head_dims": head_dims or [], "cuda_files": len(files)}
    return pip_wheel(
        src,
        cache_dir,
        "flash_attn",
        f"flash-attn {FA1_VERSION}",
        jobs,
        log_path,
        echo,
        env={"FLASH_ATTN_LOCAL_VERSION": label},
        what=what,
    )


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

    `archs` (from `edits.FA2_ARCHS`; None: all of them, as flash-attn ships it) and `head_dims` ([64] for
    GPT-2: 12 CUDA files instead of 72, without `edits.FA2_LEFT_OUT`) make the build smaller and faster;
    both are written into the wheel's version, e.g. 2.8.3+hd64.sm90. `source` is the sdist
    (.tar.gz) or an unpacked source folder (None: download it from PyPI).
    """
    archs = list(archs or edits.FA2_ARCHS)
    if unknown := [a for a in archs if a not in edits.FA2_ARCHS]:
        raise BuildError(
            f"flash-attn {FA2_VERSION} compiles for {', '.join(edits.FA2_ARCHS)}, not {', '.join(unknown)} "
            "(an sm86 or sm89 GPU runs the sm80 code: ask for 80)"
        )
    work = Path(work_dir)
    log_path = work / "build.log"
    label = labels.build_label(archs, head_dims)
    jobs = jobs or max_jobs()

    def plan() -> str:
        kernels = (
            f"head dims {edits.kernels_for(head_dims, 2)} without {', '.join(edits.FA2_LEFT_OUT).lower()}"
            if head_dims
            else "every head dim (32 to 256) and feature"
        )
        return f"{edits.arch_labels(archs)}, {kernels}"

    done = _cached_or_planned(cache_dir, FA2_VERSION, label, jobs, plan, log_path, dry_run, echo)
    if done:
        return done
    src = _source_to_build(source, work, FA2_VERSION, echo)
    files = edits.restrict_fa2_sources(src, head_dims) if head_dims else edits.cuda_files(src / "setup.py")
    if head_dims:
        echo(f"compiling {', '.join(files)} only")
    edits.set_cxx_standard(src / "setup.py")
    what = {"archs": archs, "head_dims": head_dims or [], "cuda_files": len(files)}
    # one nvcc thread per architecture of a file, as many as the cores left over by MAX_JOBS allow
    threads = max(1, min(len(archs), (os.cpu_count() or 1) // jobs))
    # FORCE_BUILD: its setup.py would otherwise first look for a release wheel of this label (there is none)
    env = {
        "FLASH_ATTN_CUDA_ARCHS": ";".join(archs),
        "FLASH_ATTN_LOCAL_VERSION": label,
        "NVCC_THREADS": str(threads),
        "FLASH_ATTENTION_FORCE_BUILD": "TRUE",
    }
    return pip_wheel(src, cache_dir, "flash_attn", f"flash-attn {FA2_VERSION}", jobs, log_path, echo, env, what)


def _cached_or_planned(
    cache_dir, version: str, label: str, jobs: int, plan, log_path: Path, dry_run: bool, echo
) -> BuildResult | None:
    """The cached wheel of exactly this build (flash-attn `version`+`label`), or, printed first, the
    plan (`plan()`: what is compiled) and, on a dry run, nothing more; None: go on and build."""
    hit = cached_wheel(cache_dir, version=f"{version}+{label}")
    if hit:
        echo(f"cached wheel: {hit} (built earlier for this torch/CUDA/Python): nothing to build")
        return BuildResult(hit, 0.0, log_path, cached=True)
    echo(
        f"plan: flash-attn {version} from source, {plan()}, MAX_JOBS={jobs} ({os.cpu_count()} cores, "
        f"{_ram_gib():.0f} GiB RAM), ninja {'found' if ninja_ok() else 'MISSING'}"
    )
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


def pip_wheel(
    project: Path,
    cache_dir,
    package: str,
    label: str,
    jobs: int,
    log_path: Path,
    echo,
    env: dict | None = None,
    what: dict | None = None,
) -> BuildResult:
    """`pip wheel` of `project` into `cache_dir/<build tag>/` with MAX_JOBS=`jobs`, timed, logged;
    `build.json` beside the log says what was built (`what`: archs, head dims, files), on what, in
    how long, and whether it worked (a `results/builds.json` row: `experiments/gpu_machine/record_build.py`)."""
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
    facts = {
        "package": label,
        **(what or {}),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "max_jobs": jobs,
        "seconds": round(seconds, 1),
        "ok": status == 0,
        "wheel": wheel and wheel.name,
    }
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
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--no-build-isolation",
                requirement,
                "-d",
                str(work),
            ],
            check=True,
        )
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
    with (
        log_path.open("w") as log,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc,
    ):
        for line in proc.stdout:
            log.write(line)
            if progress := ninja_progress(line):
                echo(progress)
        return proc.wait()
