"""The four kinds of machine this project runs on, in one table, and the rule that picks one.

A *target* is a GPU family and everything the project does differently on it: which notebook set
teaches it, which flash-attn it installs, the attention backends fastest first, the precision it
trains in, its requirements file and its notebook parameters file. `for_capability()` is the only
place where a compute capability becomes a target; everything else (the Makefile through
``python -m vanilla_flash target``, the install plan, the notebooks, the precision policy, the
attention rule, the checks) reads this table.

The backend orders rest on ``python -m vanilla_flash bench attention`` on one H100 80GB (torch
2.11+cu130, cuDNN 9.19, flash-attn-4 4.0.0b36, bf16, the FlashAttention-2 paper's setting of 16k
tokens per batch and hidden 2048; results/h100/attention.json): flash-attn 4 was the fastest at
22 to 24 of the 24 points in three runs, cuDNN mostly at 81-99% of it, so on Hopper flash-attn 4
comes first where it is installed. Under torch.compile SDPA's kernels come first: the compiler
traces them into its graph. flash-attn 4 first broke the graph at every layer; called through two custom
operators the compiler keeps whole and handed q, k, v packed, the vanilla GPT-2 at batch 192 trained with it
2-3% faster than with cuDNN through Lightning (results/h100/speed/first-strong-baseline-run/). transformers'
GPT-2 at the notebooks' batch, 16, hands it q, k, v apart, and there its bare loop ran 0.4% behind cuDNN's
(results/h100/auto-compile/): SDPA stays first under compile. FlashAttention-2
(the flash-attn 2 library, or ``sdpa_flash``, which is FA2 compiled into PyTorch) is the best an
Ampere GPU has; a Turing T4 has only flash-attn 1.x and SDPA's memory-efficient kernel (SDPA's
flash and cuDNN kernels need sm80). On CPU, SDPA picks its own kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from vanilla_flash import versions
from vanilla_flash.errors import ConfigError

BF16_MIN_CC = 8.0  # bfloat16 arithmetic exists from Ampere on


@dataclass(frozen=True)
class Target:
    name: str  # cpu | t4 | ampere | hopper: `make run-<name>`, notebooks/params/<name>.yaml
    family: str  # the GPU family, in words
    min_cc: float  # lowest compute capability this target is for (0 for the CPU)
    notebook_set: str | None  # notebooks/<set>/; the CPU target runs every set
    flash_attn: str | None  # the flash-attn version its notebook set installs, as readers know it
    precision: str  # the Lightning precision the hardware trains in
    dtypes: tuple[str, ...]  # the compute dtypes it has (checks and reports cover each)
    attention: tuple[str, ...]  # attention backends, fastest first
    attention_compiled: tuple[str, ...]  # the same under torch.compile
    requirements: str  # what `make run-<name>` installs next to the machine's own torch
    gpus: str  # examples, as on the notebooks' first page
    gpus_vi: str

    @property
    def params(self) -> str:
        return f"notebooks/params/{self.name}.yaml"

    @property
    def backend(self) -> str:
        """The backend this target's notebook set is about (its flash-attn, where it has one)."""
        return self.attention[0]

    @property
    def flash_attn_major(self) -> int | None:
        return versions.major(self.flash_attn.replace(".x", "")) if self.flash_attn else None


CPU = Target(
    "cpu",
    "CPU",
    0.0,
    None,
    None,
    "32-true",
    ("float32",),
    ("sdpa",),
    ("sdpa",),
    "requirements-dev.txt",
    "any computer, no GPU",
    "máy bất kỳ, không cần GPU",
)
T4 = Target(
    "t4",
    "Turing",
    7.5,
    "flash_attn_1",
    "1.x",
    "16-mixed",
    ("float16",),
    ("flash_attn_1", "sdpa_efficient", "sdpa"),
    ("flash_attn_1", "sdpa_efficient", "sdpa"),
    "requirements-t4.txt",
    "a Turing GPU: Colab's free **T4** (compute capability 7.5), float16",
    "GPU thế hệ Turing: **T4** miễn phí của Colab (compute capability 7.5), float16",
)
AMPERE = Target(
    "ampere",
    "Ampere/Ada",
    8.0,
    "flash_attn_2",
    "2.x",
    "bf16-mixed",
    ("bfloat16", "float16"),
    ("flash_attn_2", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "sdpa"),
    ("flash_attn_2", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "sdpa"),
    "requirements-ampere.txt",
    "an Ampere or Ada GPU: **A100, L4, RTX 30/40** (compute capability 8.0-8.9), bfloat16",
    "GPU Ampere hoặc Ada: **A100, L4, RTX 30/40** (compute capability 8.0-8.9), bfloat16",
)
HOPPER = Target(
    "hopper",
    "Hopper/Blackwell",
    9.0,
    "flash_attn_4",
    "4",
    "bf16-mixed",
    ("bfloat16", "float16"),
    ("flash_attn_4", "sdpa_cudnn", "sdpa_flash", "flash_attn_2", "sdpa"),
    ("sdpa_cudnn", "sdpa_flash", "flash_attn_4", "flash_attn_2", "sdpa"),
    "requirements-hopper.txt",
    "a Hopper or Blackwell GPU: **H100, H200, B200** (compute capability 9.0-10.3), bfloat16",
    "GPU Hopper hoặc Blackwell: **H100, H200, B200** (compute capability 9.0-10.3), bfloat16",
)

TARGETS: dict[str, Target] = {t.name: t for t in (CPU, T4, AMPERE, HOPPER)}
GPU_TARGETS = (T4, AMPERE, HOPPER)


def get(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}") from None


def for_capability(cc: float | None) -> Target:
    """The target of a GPU with compute capability `cc` (None or 0: no GPU, the CPU target).

    The newest family whose lowest capability `cc` reaches; a GPU older than Turing gets the T4
    target, whose install plan then says the GPU is too old for any flash-attn."""
    if not cc:
        return CPU
    return next((t for t in reversed(GPU_TARGETS) if cc >= t.min_cc), T4)


def for_set(notebook_set: str) -> Target:
    """The GPU target a notebook set (flash_attn_1, flash_attn_2, flash_attn_4) is written for."""
    for t in GPU_TARGETS:
        if t.notebook_set == notebook_set:
            return t
    raise ConfigError(f"unknown notebook set {notebook_set!r}; the sets: {', '.join(notebook_sets())}")


def notebook_sets() -> list[str]:
    return [t.notebook_set for t in GPU_TARGETS]


def sets_to_run(target: Target) -> list[str]:
    """The notebook sets `make run-<target>` executes: a GPU its own set, the CPU every set."""
    return notebook_sets() if target is CPU else [target.notebook_set]


def for_flash_attn(major: int) -> Target:
    """The target whose notebook set installs flash-attn `major` (1, 2 or 4)."""
    return next(t for t in GPU_TARGETS if t.flash_attn_major == major)


def family_name(cc: float) -> str:
    """'Turing', 'Ampere/Ada' or 'Hopper/Blackwell' for a compute capability those families start at."""
    return next((t.family for t in GPU_TARGETS if t.min_cc == cc), f"sm{int(cc * 10)}")


def supports_bfloat16(cc: float) -> bool:
    return cc >= BF16_MIN_CC


def no_bfloat16(gpu_name: str | None, cc: float) -> str:
    """The one sentence for bfloat16 asked of a GPU that has none."""
    return (
        f"bfloat16 needs compute capability >= {BF16_MIN_CC}; this {gpu_name or 'GPU'} is {cc}: use 16-mixed "
        "(float16 with loss scaling) instead of bf16-mixed"
    )
