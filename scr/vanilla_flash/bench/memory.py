"""How attention's memory grows with the sequence: `memory_sweep()` measures each backend's peak
memory at growing lengths, `growth_exponents()` fits the exponent (1 for a flash-style kernel, 2
for one that stores the scores)."""

from __future__ import annotations

import math

import torch

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import check, timing
from vanilla_flash.errors import AttentionError


def memory_sweep(
    backends: list[str] | None = None,
    seq_lens=(1024, 2048, 4096, 8192, 16384),
    heads=16,
    head_dim=64,
    dtype="bfloat16",
) -> list[dict]:
    """Peak memory of one forward+backward at batch 1 (MiB above the inputs) as seq grows."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = env.probe()
    backends = backends or [
        "eager",
        "sdpa_math",
        "sdpa_efficient",
        "sdpa_flash",
        "sdpa_cudnn",
        "flash_attn_1",
        "flash_attn_4",
    ]
    rows = []
    for seq in seq_lens:
        shape = check.Shape(1, heads, seq, head_dim, True)
        qkv, grad, _ = check.random_inputs(shape, getattr(torch, dtype), device, torch.Generator(device).manual_seed(2))
        for name in backends:
            if attention.why_not(name, machine, dtype=dtype, head_dim=head_dim):
                continue
            row = {"backend": name, "seq": seq, "peak_mem_mib": None, "status": "ok"}
            rows.append(row)
            try:
                peak = timing.peak_mib(timing.fwd_bwd(name, qkv, grad, causal=True))
                if peak is not None:
                    row["peak_mem_mib"] = round(peak, 1)
            except AttentionError as err:
                row["status"] = f"skip: {err}"[:200]
            except Exception as err:
                if not timing.is_oom(err):
                    raise
                row["status"] = "OOM"
            timing.free_memory()
    return rows


def growth_exponents(rows: list[dict]) -> dict[str, float]:
    """Per backend, the log-log slope of peak memory against seq len (1: linear, 2: quadratic)."""
    out = {}
    for name in sorted({r["backend"] for r in rows}):
        pts = [(r["seq"], r["peak_mem_mib"]) for r in rows if r["backend"] == name and r.get("peak_mem_mib")]
        if len(pts) >= 2:
            (s0, m0), (s1, m1) = pts[0], pts[-1]
            out[name] = round(math.log(m1 / m0) / math.log(s1 / s0), 2)
    return out
