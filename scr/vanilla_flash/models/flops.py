"""Counting the work: parameters, FLOPs per token, attention FLOPs, and MFU against a GPU's peak.

Kept beside the parameter count, as nanoGPT keeps `estimate_mfu` beside `get_num_params`. Both
FLOP counts start from the forward pass of attention, 4·S²·D per head and sequence (two matrix
products, Q·Kᵀ and P·V, 2 FLOPs per multiply-add), and differ in what they count for backward:
- `flops_per_token` counts *model* FLOPs, PaLM's convention for MFU (appendix B): backward is twice
  forward, so a layer's attention costs 3 x 4·S·D per head and token, 12·L·H·D·S in all, on top of
  6 FLOPs per weight;
- `attention_flops` counts what a FlashAttention kernel computes, the convention of the
  FlashAttention papers' benchmarks: backward is 2.5 times forward (five matrix products against
  two, one of them the recomputed scores), and a causal call does half the work.
"""

from __future__ import annotations

# Dense half-precision tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0, "V100": 125.0}


def parameter_count(model, *, embeddings: bool = False) -> int:
    """Parameters, without the position embeddings unless `embeddings` (the count used for FLOPs).
    Works for transformers' GPT-2 (`wpe`) and flash-attn's (`position_embeddings`)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if embeddings or not ("wpe" in name or "position_embeddings" in name)
    )


def attention_forward_flops(seq: int, head_dim: int) -> float:
    """FLOPs of one head's attention forward over one sequence of `seq` tokens (no masking)."""
    return 4 * seq * seq * head_dim


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12·L·H·D·S for attention (PaLM appendix B)."""
    return 6 * n_params + 3 * n_layer * n_head * attention_forward_flops(seq_len, head_dim) / seq_len


def model_flops_per_token(net, seq_len: int) -> float:
    """`flops_per_token` of a built GPT-2 (transformers' or flash-attn's: both have a GPT2Config)."""
    c = net.config
    return flops_per_token(parameter_count(net), c.n_layer, c.n_head, c.n_embd // c.n_head, seq_len)


def attention_flops(batch: int, heads: int, seq: int, head_dim: int, causal: bool, mode: str) -> float:
    """FLOPs of an attention call: forward 4·B·H·S²·D, backward 2.5x forward; causal half."""
    fwd = batch * heads * attention_forward_flops(seq, head_dim) / (2 if causal else 1)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd_bwd": 3.5 * fwd}[mode]


def peak_flops(gpu_name: str | None) -> float | None:
    """The data-sheet peak of a GPU by name, in FLOP/s (None for a CPU or an unknown GPU)."""
    if not gpu_name:
        return None
    for key, tflops in PEAK_TFLOPS.items():
        if key in gpu_name:
            return tflops * 1e12
    return None


def mfu(tokens_per_s: float, flops_per_token_: float, gpu_name: str | None) -> float | None:
    """Model FLOPs utilisation: the fraction of the GPU's peak that the model's FLOPs reach."""
    peak = peak_flops(gpu_name)
    return tokens_per_s * flops_per_token_ / peak if peak else None
