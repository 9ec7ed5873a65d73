"""The blocks' matmuls in float8 (`float8: tensorwise | rowwise`, the vanilla model, bf16-mixed): each
matmul's inputs are scaled and cast to float8 on the fly and multiplied on the GPU's float8 tensor cores
(Hopper and newer, or Ada), forward and backward, with torchao's recipes of those names: `tensorwise`,
one scale per tensor (faster), `rowwise`, one per row (closer to bf16). The weights, the optimizer and
the checkpoints stay as they are; the head and the loss stay in bf16. torchao is imported only here,
and only when a run asks for float8.
"""

from __future__ import annotations

import dataclasses

import torch

from vanilla_flash.config import FLOAT8_RECIPES as RECIPES
from vanilla_flash.errors import ConfigError

MIN_CAPABILITY = (8, 9)  # float8 tensor cores: Ada (8.9), Hopper (9.0) and newer


def why_not(recipe: str, device: torch.device | str | None = None) -> str | None:
    """Why the blocks' matmuls cannot run in float8 with `recipe` on `device` (None: they can)."""
    if recipe not in RECIPES:
        return f"float8 {recipe!r} is not one of: {', '.join(RECIPES)}"
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < MIN_CAPABILITY:
        major, minor = torch.cuda.get_device_capability(device)
        return (
            f"float8 matmuls need float8 tensor cores (compute capability 8.9 or newer: Ada, Hopper, Blackwell); "
            f"this GPU is {major}.{minor}: leave float8 unset"
        )
    try:
        import torchao.float8  # noqa: F401
    except ImportError:
        return "float8 matmuls use torchao's float8 training: `pip install torchao` (requirements-hopper.txt pins it)"
    return None


class Float8Matmul:
    """bias + x @ weight in float8 by `recipe`, forward and backward, with `weight` stored (in, out) as
    transformers' Conv1D keeps it; the result in the autocast dtype (bf16). torchao's configuration of
    the recipe and the matmul settings its own `Float8Linear` derives from it (one is made on the meta
    device to read them) are made once, for a GPU and, float8 emulated in higher precision, for a CPU
    (the tests)."""

    def __init__(self, recipe: str):
        from torchao.float8 import Float8LinearConfig
        from torchao.float8.float8_linear import Float8Linear

        self.recipe, self.settings = recipe, {}
        for emulate in (False, True):
            config = dataclasses.replace(Float8LinearConfig.from_recipe_name(recipe), emulate=emulate)
            linear = Float8Linear.from_float(torch.nn.Linear(16, 16, device="meta"), config=config)
            self.settings[emulate] = (linear.config, linear.linear_mm_config)

    def __call__(self, bias: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        from torchao.float8.float8_linear import matmul_with_hp_or_float8_args

        config, mm_config = self.settings[not x.is_cuda]
        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        out = matmul_with_hp_or_float8_args.apply(x, weight, mm_config, config)
        return out + bias.to(out.dtype)


def matmul(recipe: str | None, device: torch.device | str | None = None) -> Float8Matmul | None:
    """The float8 matmul of `recipe` (None: none, the matmuls stay in bf16), or a ConfigError that says
    why it cannot run on `device`."""
    if recipe is None:
        return None
    reason = why_not(recipe, device)
    if reason:
        raise ConfigError(reason)
    return Float8Matmul(recipe)
