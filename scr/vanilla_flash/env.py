"""What this machine is: the facts, read once, and nothing decided from them.

`probe()` reads the GPU, its compute capability and memory, the driver, CUDA, cuDNN, Triton and
transformers versions, the installed flash-attn versions and whether this is Colab into a
`Machine`. Everything that decides something from those facts (the target, which backend can run,
which precision to train in) takes a `Machine`, so tests can hand it a simulated T4 or H100
instead of the real hardware. `vanilla_flash.results.provenance` joins the facts with those decisions.

On Colab, importing Triton-based code used to fail with ``AssertionError: libcuda.so cannot
found!``: Colab's driver library lives in ``/usr/lib64-nvidia``, which the linker cache does not
list. `fix_colab_libcuda()` repairs that in-process (a ``!export`` in a notebook cell changes
nothing for later cells, because each ``!`` line runs in its own shell).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vanilla_flash import targets, versions

COLAB_DRIVER_DIR = Path("/usr/lib64-nvidia")


@dataclass(frozen=True)
class Machine:
    """The facts about a machine that decide what can run on it."""

    device: str = "cpu"  # "cpu" or "cuda"
    gpu_name: str | None = None
    capability: tuple[int, int] | None = None
    gpu_memory_gib: float | None = None
    gpu_count: int = 0
    driver: str | None = None
    cuda: str | None = None  # the CUDA version torch was built with
    cudnn: int | None = None  # e.g. 91900 for 9.19
    torch: str = ""
    cxx11_abi: bool | None = None  # whether torch was built with the C++11 ABI (a compiled wheel must match)
    triton: str | None = None
    transformers: str | None = None
    python: str = ""
    cpu_count: int = 1
    colab: bool = False
    flash_attn: str | None = None  # version of the `flash-attn` distribution (1.x or 2.x)
    flash_attn_4: str | None = None  # version of the `flash-attn-4` distribution
    flash_attn_error: str | None = None  # why `flash_attn` fails to import although installed
    flash_attn_4_error: str | None = None  # why `flash_attn.cute` fails to import although installed

    @property
    def cc(self) -> float:
        """Compute capability as a number (7.5 for a T4, 9.0 for an H100), 0 on CPU."""
        if self.capability is None:
            return 0.0
        return self.capability[0] + self.capability[1] / 10

    @property
    def label(self) -> str:
        if self.device == "cpu":
            return "CPU"
        return f"{self.gpu_name} (sm{self.capability[0]}{self.capability[1]})"

    @property
    def target(self) -> targets.Target:
        """The row of `vanilla_flash.targets` this machine belongs to."""
        return targets.for_capability(self.cc if self.device == "cuda" else None)

    def flash_attn_major(self) -> int | None:
        if not self.flash_attn:
            return None
        return versions.major(self.flash_attn)


def dist_version(name: str) -> str | None:
    """Version of an installed distribution, without importing it (flash-attn imports are slow
    and can fail on a machine without a GPU)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_error(module: str) -> str | None:
    """Why importing `module` fails (its exception, in one line), None if it imports. A library can
    be installed and still not import: built for another torch, or two packages sharing one
    `flash_attn` folder (flash-attn 2.8.3 beside flash-attn-4 broke `flash_attn.cute` on an H100
    with `AttributeError: module 'cutlass.cute.core' has no attribute 'ThrMma'`)."""
    try:
        importlib.import_module(module)
    except Exception as err:  # any failure at import means the library cannot run here
        return f"{type(err).__name__}: {err}".splitlines()[0][:300]
    return None


def in_colab() -> bool:
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def probe() -> Machine:
    """Read the facts of this machine."""
    import torch

    facts: dict = {
        "torch": torch.__version__,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "triton": dist_version("triton"),
        "transformers": dist_version("transformers"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 1,
        "colab": in_colab(),
        "flash_attn": dist_version("flash-attn") or dist_version("flash_attn"),
        "flash_attn_4": dist_version("flash-attn-4"),
    }
    if facts["flash_attn"]:
        facts["flash_attn_error"] = import_error("flash_attn.flash_attn_interface")
    if facts["flash_attn_4"]:
        facts["flash_attn_4_error"] = import_error("flash_attn.cute")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(
            device="cuda",
            gpu_name=props.name,
            capability=(props.major, props.minor),
            gpu_memory_gib=props.total_memory / 2**30,
            gpu_count=torch.cuda.device_count(),
            driver=_nvidia_driver(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        )
    return Machine(**facts)


def fix_colab_libcuda(machine: Machine | None = None) -> str | None:
    """Point Triton at Colab's driver library, once, in this process.

    Returns a sentence saying what was done, or None when nothing was needed. Triton looks for
    ``libcuda.so`` through ``TRITON_LIBCUDA_PATH`` first, then ``ldconfig -p``; on Colab the driver
    sits in /usr/lib64-nvidia, which neither lists. Setting the variable here (not with ``!export``)
    reaches this Python process and every Triton compile after it.
    """
    colab = machine.colab if machine else in_colab()
    if not colab or os.environ.get("TRITON_LIBCUDA_PATH"):
        return None
    if not (COLAB_DRIVER_DIR / "libcuda.so").exists() and not (COLAB_DRIVER_DIR / "libcuda.so.1").exists():
        return None
    os.environ["TRITON_LIBCUDA_PATH"] = str(COLAB_DRIVER_DIR)
    done = f"set TRITON_LIBCUDA_PATH={COLAB_DRIVER_DIR} for Triton (Colab's libcuda.so is not in ldconfig)"
    try:
        subprocess.run(["ldconfig", str(COLAB_DRIVER_DIR)], check=True, capture_output=True, timeout=60)
        done += f" and ran `ldconfig {COLAB_DRIVER_DIR}`"
    except (OSError, subprocess.SubprocessError):
        pass  # the variable alone is enough for Triton
    return done


def capability() -> float | None:
    """The first GPU's compute capability, read without importing torch where torch is missing
    (`make run` asks before anything is installed): torch if it imports, else nvidia-smi."""
    try:
        import torch
    except ImportError:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return major + minor / 10
