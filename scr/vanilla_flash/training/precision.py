"""Which precision to train in, chosen from the hardware.

Lightning's mixed precision runs the model under ``torch.autocast``: matrix products and attention
see float16/bfloat16 activations while the weights, the optimizer state and the token ids keep
their own dtypes. That is what the half-precision attention kernels need, and it is why nobody
here ever calls ``.to(torch.float16)`` on a batch: casting the batch casts the token ids too, and
the embedding then fails with "Expected tensor for argument #1 'indices' to have one of the
following scalar types: Long, Int; but got torch.cuda.HalfTensor".

``bf16-true``, only where a config asks for it, is pure bfloat16 training: Lightning casts the weights
themselves (and so the optimizer's state) to bfloat16 and runs no autocast. It is faster (4.7% for a
plain GPT-2 on an H200, results/h200/speed/probe-run/plain_probe.json) and trains with other numerics:
an update smaller than a weight's last bit is lost.
"""

from __future__ import annotations

import torch

from vanilla_flash import targets
from vanilla_flash.config import PRECISIONS
from vanilla_flash.env import Machine
from vanilla_flash.errors import ConfigError

PRECISION_OF = {"float32": "32-true", "float16": "16-mixed", "bfloat16": "bf16-mixed"}  # by compute dtype


def policy(machine: Machine, override: str | None = None) -> str:
    """Lightning precision for `machine`: its target's (16-mixed on Turing, bf16-mixed on Ampere and
    newer, 32-true on CPU). `override` forces one, after checking it can run here ("auto" or None:
    the target's)."""
    if override not in (None, "auto"):
        if override not in PRECISIONS:
            raise ConfigError(f"precision {override!r} is not one of {', '.join(PRECISIONS)}")
        bf16 = override.startswith("bf16")
        if bf16 and machine.device == "cuda" and not targets.supports_bfloat16(machine.cc):
            raise ConfigError(targets.no_bfloat16(machine.gpu_name, machine.cc))
        if override == "16-mixed" and machine.device == "cpu":
            raise ConfigError("16-mixed needs a CUDA GPU; on CPU use 32-true or bf16-mixed")
        return override
    return machine.target.precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype autocast computes in for a Lightning precision string (None: no autocast)."""
    return {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype the matmuls and attention see in a Lightning precision: autocast's, or the weights'."""
    return autocast_dtype(precision) or weights_dtype(precision)


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype a Lightning precision holds the weights (and the optimizer's state) in: bfloat16 in
    bf16-true, float32 in the mixed precisions and 32-true."""
    return torch.bfloat16 if precision == "bf16-true" else torch.float32


def autocast(precision: str, device_type: str):
    """The autocast context Lightning would use, for code outside a Trainer (checks, benchmarks)."""
    dtype = autocast_dtype(precision)
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)
