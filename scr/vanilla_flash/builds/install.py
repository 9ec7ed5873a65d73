"""Get the right flash-attn onto this machine, and keep it across Colab sessions.

- `plan(machine)` says what this GPU needs: flash-attn 1.0.9 built from source on Turing (no wheels
  exist), flash-attn 2 on Ampere and Ada from a wheel that a release publishes for this
  torch/CUDA/Python (`fa2_path`, `FA2_PUBLISHED`) or else a source build, the flash-attn-4 wheels on
  Hopper and Blackwell, nothing on CPU.
- `ensure(plan)` installs what is missing: a cached wheel of a build made earlier (`cached_wheel`,
  in a folder per torch/CUDA/Python, `build_tag`; on Colab, Google Drive), a release wheel, or
  flash-attn-4; `vanilla_flash.builds.sources` makes the builds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vanilla_flash import targets, versions
from vanilla_flash.builds import labels
from vanilla_flash.env import Machine
from vanilla_flash.errors import BuildError

FA1_VERSION = "1.0.9"
FA2_VERSION = "2.8.3"
FA4_REQUIREMENT = "flash-attn-4==4.0.0b36"
FA2_RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download"


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
        return Plan(
            "cpu",
            None,
            "sdpa",
            steps=["nothing to install: on CPU the model uses PyTorch SDPA"],
            notes=["flash-attn needs an NVIDIA GPU; the notebooks run here as dry runs"],
        )
    cc = machine.cc
    arch = f"{machine.capability[0]}{machine.capability[1]}"
    wanted = targets.get(target) if target and target != "cpu" else machine.target
    if cc < wanted.min_cc:
        why = f"compute capability {cc} is below what the {wanted.name} set needs ({wanted.min_cc})"
        return Plan("unsupported", None, "sdpa", notes=[why])
    if wanted is targets.T4:
        return Plan(
            wanted.name,
            f"flash-attn {FA1_VERSION} (built from source)",
            wanted.backend,
            [arch],
            steps=[
                f"look for a cached flash_attn-{FA1_VERSION} wheel built for this torch",
                f"else build it from the PyPI source archive for sm_{arch} only (minutes: results/builds.json)",
                "install the wheel and check a real kernel call against an fp32 reference",
            ],
            notes=["no flash-attn 2 or 4 on Turing: they need compute capability 8.0 / 9.0"],
        )
    if wanted is targets.AMPERE:
        path = fa2_path(machine)
        first = {
            "installed": "nothing to install",
            "wheel": f"install the wheel {path.wheel}",
            "build": "build just what GPT-2 needs from source (02_build: head dim 64, this GPU's architecture), "
            "or reuse the wheel cached by an earlier build",
        }[path.kind]
        return Plan(
            wanted.name,
            f"flash-attn 2 ({path.kind})",
            wanted.backend,
            [arch],
            steps=[first, "check a real kernel call against an fp32 reference"],
            notes=[path.why, "without it, sdpa_flash (FlashAttention-2 inside PyTorch) runs at close to its speed"],
        )
    return Plan(
        wanted.name,
        f"{FA4_REQUIREMENT} (wheels, nothing to compile)",
        wanted.backend,
        [arch],
        steps=[f"pip install {FA4_REQUIREMENT}", "check a real kernel call against an fp32 reference"],
        notes=[
            "without it, cuDNN (sdpa_cudnn) is the next fastest (results/h100/attention.json); "
            "under torch.compile `auto` uses cuDNN"
        ],
    )


def fa2_wheel(
    machine: Machine | None = None,
    *,
    torch_version: str | None = None,
    cuda: str | None = None,
    cxx11_abi: bool | None = None,
    python: str | None = None,
    version: str = FA2_VERSION,
) -> str:
    """The file name of flash-attn 2's prebuilt release wheel for this torch:
    flash_attn-{ver}+cu{CUDA major}torch{major.minor}cxx11abi{TRUE|FALSE}-cp{py}-cp{py}-linux_x86_64.whl"""
    import torch

    torch_version = torch_version or (machine.torch if machine else torch.__version__)
    cuda = cuda or (machine.cuda if machine else torch.version.cuda) or ""
    if cxx11_abi is None:
        cxx11_abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    python = python or (machine.python if machine else f"{sys.version_info.major}.{sys.version_info.minor}")
    torch_mm = versions.major_minor(torch_version)
    py = "cp" + versions.major_minor(python).replace(".", "")
    return (
        f"flash_attn-{version}+cu{versions.major(cuda) or ''}torch{torch_mm}cxx11abi{str(cxx11_abi).upper()}"
        f"-{py}-{py}-linux_x86_64.whl"
    )


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
        return (
            torch_mm in self.torch
            and python_mm in self.python
            and cuda_major in self.cuda
            and (torch_mm, python_mm) not in self.exclude
        )


# flash-attn 2's release wheels: the matrix of `.github/workflows/publish.yml` at each release tag of
# Dao-AILab/flash-attention, both C++ ABIs. The last tags, v2.8.3 (2025-08-14) and v2.8.3.post1
# (2026-06-10), build for torch 2.4-2.8 with CUDA 12 only: there is no upstream wheel for torch 2.9 or
# newer (Colab's 2.11 among them). The main branch's workflow (2026-03-10) lists torch 2.6-2.10 with
# CUDA 12.9 and 13.0, but no release has been tagged from it.
_FA2_MATRIX = dict(
    torch=("2.4", "2.5", "2.6", "2.7", "2.8"),
    python=("3.9", "3.10", "3.11", "3.12", "3.13"),
    cuda=("12",),
    exclude=(("2.4", "3.13"),),
)
FA2_PUBLISHED = (
    Fa2Release("2.8.3.post1", "v2.8.3.post1:.github/workflows/publish.yml", **_FA2_MATRIX),
    Fa2Release("2.8.3", "v2.8.3:.github/workflows/publish.yml", **_FA2_MATRIX),
)


@dataclass(frozen=True)
class CommunityWheel:
    """A flash-attn 2 wheel built by someone other than upstream, for a torch that upstream has no
    wheel for: taken only by its sha256, so a file replaced after it was checked is refused."""

    url: str
    sha256: str
    torch: str  # major.minor
    cuda: str  # major
    python: str  # major.minor
    cxx11_abi: bool
    source: str  # where it was announced


# Community builds for torch 2.9 and newer exist (announced in Dao-AILab/flash-attention issues 2299,
# 2425 and 2442; mjun0812/flash-attention-prebuild-wheels publishes a matrix), but none publishes a
# checksum, and none could be downloaded to compute one: an entry goes here only with the sha256 of the
# file someone downloaded and checked. Until then, torch 2.9+ takes the source build.
FA2_COMMUNITY: tuple[CommunityWheel, ...] = ()


@dataclass
class Fa2Path:
    """How this machine gets flash-attn 2, and why."""

    kind: str  # installed | wheel | build
    why: str
    wheel: str | None = None
    url: str | None = None
    sha256: str | None = None  # a community wheel is installed only if its file has this digest


def fa2_path(machine: Machine) -> Fa2Path:
    """flash-attn 2 for this torch, CUDA, C++ ABI and Python, in this order: the one installed; a
    wheel that a release publishes (`FA2_PUBLISHED`; never a name spelled for a release that has no
    such wheel); a community wheel with its sha256 pinned (`FA2_COMMUNITY`); else a source build of
    just what GPT-2 needs (`vanilla_flash.builds.sources.build_fa2`)."""
    if machine.flash_attn_major() == 2:
        return Fa2Path("installed", f"flash-attn {machine.flash_attn} is installed")
    torch_mm, python_mm = versions.major_minor(machine.torch), versions.major_minor(machine.python)
    cuda_major = str(versions.major(machine.cuda) or "")
    for release in FA2_PUBLISHED:
        if release.has(torch_mm, python_mm, cuda_major):
            abi = machine.cxx11_abi if machine.cxx11_abi is not None else True  # torch 2.7+ wheels: True
            wheel = fa2_wheel(machine, cxx11_abi=abi, version=release.version)
            why = (
                f"flash-attn {release.version} has a wheel for torch {torch_mm}, CUDA {cuda_major}, Python {python_mm}"
            )
            return Fa2Path("wheel", why, wheel, fa2_wheel_url(wheel, release.version))
    abi = machine.cxx11_abi if machine.cxx11_abi is not None else True
    for w in FA2_COMMUNITY:
        if (w.torch, w.cuda, w.python, w.cxx11_abi) == (torch_mm, cuda_major, python_mm, abi):
            why = f"no release wheel for torch {torch_mm}; a community build ({w.source}), checked by its sha256"
            return Fa2Path("wheel", why, _file_name(w.url), w.url, w.sha256)
    newest = FA2_PUBLISHED[0]
    why = (
        f"no flash-attn 2 release publishes a wheel for torch {torch_mm} with CUDA {cuda_major} and Python "
        f"{python_mm} (the newest, {newest.version}, covers torch {newest.torch[0]}-{newest.torch[-1]}, CUDA "
        f"{'/'.join(newest.cuda)}), and no community wheel with a pinned checksum matches: build it from source. "
        "All of flash-attn 2 is 72 kernel files, over an hour even on 16 cores; just what GPT-2 needs (head dim "
        "64, this GPU's architecture) is 12 (02_build; the measured times are in results/builds.json). Until "
        "then, sdpa_flash is FlashAttention-2 inside PyTorch"
    )
    return Fa2Path("build", why)


def _file_name(url: str) -> str:
    from urllib.parse import unquote

    return unquote(url.rsplit("/", 1)[-1])  # a wheel's "+" is "%2B" in a URL


def download_verified(url: str, sha256: str, folder: str | os.PathLike) -> Path:
    """Download `url` into `folder` and return the file, or raise BuildError (and keep nothing) if
    its sha256 is not `sha256`."""
    import hashlib
    import urllib.request

    dest = Path(folder) / _file_name(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise BuildError(
            f"{url} has sha256 {digest.hexdigest()}, not the pinned {sha256}: refused (the file was "
            "replaced or damaged); nothing was installed"
        )
    return partial.replace(dest)


def cached_wheel(
    cache_dir: str | os.PathLike, package: str = "flash_attn", version: str = FA1_VERSION, tag: str | None = None
) -> Path | None:
    """A wheel of `package` `version` in `cache_dir` built for `tag` (see `build_tag()`), if any; a
    `version` with a local label (1.0.9+hd64.sm75) matches only that build."""
    package = package.replace("-", "_")
    folder = Path(cache_dir) / (tag or build_tag())
    hits = sorted(folder.glob(f"{package}-{version}-*.whl" if "+" in version else f"{package}-{version}*.whl"))
    return hits[-1] if hits else None


def usable_wheel(cache_dir: str | os.PathLike, machine: Machine, major: int = 1) -> Path | None:
    """The newest cached flash-attn `major`.x wheel for this torch whose kernels run on this GPU."""
    folder = Path(cache_dir) / build_tag(machine)
    for wheel in sorted(folder.glob(f"flash_attn-{major}.*.whl"), key=lambda p: p.stat().st_mtime, reverse=True):
        built = labels.build_of(wheel.name.split("-")[1])
        if built is None or labels.build_cannot(built, machine.cc, None, None) is None:
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
    return f"torch{torch_version}-cuda{cuda}-py{versions.major_minor(python)}"


def pip_install(*args: str, echo=print) -> None:
    """`pip install` that fails loudly (a failing `!pip` in a notebook cell does not fail the cell)."""
    cmd = [sys.executable, "-m", "pip", "install", *args]
    echo("$ " + " ".join(cmd[2:]))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"pip install {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def install_cached(wheel: str | os.PathLike, echo=print) -> None:
    pip_install("--no-deps", str(wheel), echo=echo)


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
        wheel = usable_wheel(cache_dir, machine) if cache_dir else None
        if not wheel:
            return "no flash-attn 1.x wheel for this torch and GPU cached yet: run the build notebook (02_build) once"
        install_cached(wheel, echo=echo)
        return f"installed the cached {wheel.name} (no rebuild)"
    if plan_.target == "ampere":
        path = fa2_path(machine)
        if path.kind == "installed":
            return f"flash-attn {machine.flash_attn} is already installed"
        if path.kind == "build":
            wheel = usable_wheel(cache_dir, machine, 2) if cache_dir else None
            if not wheel:
                return f"not installed yet: {path.why}"
            install_cached(wheel, echo=echo)
            return f"installed the cached {wheel.name} (built earlier by 02_build; no rebuild)"
        if path.sha256:
            pip_install("--no-deps", str(download_verified(path.url, path.sha256, cache_dir or "build")), echo=echo)
        else:
            pip_install("--no-deps", path.url, echo=echo)
        return f"installed {path.wheel} ({path.why})"
    if machine.flash_attn_4:
        return f"flash-attn-4 {machine.flash_attn_4} is already installed"
    pip_install(FA4_REQUIREMENT, echo=echo)
    return f"installed {FA4_REQUIREMENT}"
