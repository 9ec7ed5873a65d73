"""Which precision to train in, chosen from the hardware.

Lightning's mixed precision runs the model under ``torch.autocast``: matrix products and attention
see float16/bfloat16 activations while the weights, the optimizer state and the token ids keep
their own dtypes. That is what the half-precision attention kernels need, and it is why nobody
here ever calls ``.to(torch.float16)`` on a batch: casting the batch casts the token ids too, and
the embedding then fails with "Expected tensor for argument #1 'indices' to have one of the
following scalar types: Long, Int; but got torch.cuda.HalfTensor".
"""

from __future__ import annotations

import torch

from vanilla_flash.env import Machine

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def policy(machine: Machine, override: str | None = None) -> str:
    """Lightning precision for `machine`: 16-mixed on Turing, bf16-mixed on Ampere+, 32-true on CPU.

    `override` forces one, after checking it can run here.
    """
    if override is not None:
        if override not in PRECISIONS:
            raise ValueError(f"precision {override!r} is not one of {', '.join(PRECISIONS)}")
        if override == "bf16-mixed" and machine.device == "cuda" and machine.cc < 8.0:
            raise ValueError(
                f"bf16-mixed needs compute capability >= 8.0; this {machine.gpu_name} is {machine.cc}: "
                "use 16-mixed (float16 with loss scaling)"
            )
        if override == "16-mixed" and machine.device == "cpu":
            raise ValueError("16-mixed needs a CUDA GPU; on CPU use 32-true or bf16-mixed")
        return override
    if machine.device != "cuda":
        return "32-true"
    return "bf16-mixed" if machine.cc >= 8.0 else "16-mixed"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype autocast computes in for a Lightning precision string (None: no autocast)."""
    return {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)


def autocast(precision: str, device_type: str):
    """The autocast context Lightning would use, for code outside a Trainer (checks, benchmarks)."""
    dtype = autocast_dtype(precision)
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)
