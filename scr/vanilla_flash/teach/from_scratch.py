"""FlashAttention written from scratch, for the notebook that builds it step by step (05_from_scratch).

- `naive_attention`: softmax(Q Kᵀ / √d) V with the whole (seq x seq) score matrix, as a textbook writes it.
- `online_softmax`: softmax over a row seen in blocks, with a running maximum and a running sum.
- `tiled_forward`: the FlashAttention forward pass (FlashAttention-2's loop order: queries outside,
  keys and values inside), block sizes as parameters; returns the output, the log-sum-exp of each
  row (all the backward pass keeps) and the bytes it moved to and from the GPU's main memory.
- `tiled_backward`: the backward pass by recomputation: the probabilities are rebuilt block by block
  from Q, K and the log-sum-exp instead of being stored.
- `naive_bytes`, `tiled_bytes`: those memory traffics as formulas (the FlashAttention paper's
  Θ(Nd + N²) against Θ(N²d²/M)), checked against what `tiled_forward` counts.
- `score_memory`, `traffic_plot`, `memory_plot`: the notebook's measurements.

The same forward pass as CUDA kernels, from one thread per query row to tensor cores, is the kernel
ladder (`vanilla_flash.teach.ladder`); the checks of the reader's own steps are `teach.checks`.

Tensors are (batch, heads, seq, head_dim) throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vanilla_flash.bench import timing
from vanilla_flash.results import plots


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (batch, heads, seq, seq): the S x S matrix
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """softmax over the last dimension of `x`, reading it `block` columns at a time: a running
    maximum m and a running sum l of exp(x - m), rescaled whenever m grows; then one last pass."""
    m = torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype)
    row_sum = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block):
        chunk = x[..., start : start + block]
        m_new = torch.maximum(m, chunk.max(dim=-1).values)
        row_sum = row_sum * torch.exp(m - m_new) + torch.exp(chunk - m_new[..., None]).sum(dim=-1)
        m = m_new
    return torch.exp(x - m[..., None]) / row_sum[..., None]


@dataclass
class Traffic:
    """Bytes read from and written to main memory (HBM on a GPU), counted as a kernel moves them."""

    read: int = 0
    written: int = 0
    by_tensor: dict = field(default_factory=dict)

    def add(self, name: str, t: torch.Tensor, write: bool = False, element_bytes: int | None = None) -> None:
        n = t.numel() * (element_bytes or t.element_size())
        if write:
            self.written += n
        else:
            self.read += n
        self.by_tensor[name] = self.by_tensor.get(name, 0) + n

    @property
    def total(self) -> int:
        return self.read + self.written


def tiled_forward(q, k, v, block_q: int = 64, block_k: int = 64, causal: bool = False, element_bytes: int = 2):
    """FlashAttention's forward pass, tile by tile. Returns (output, log-sum-exp per row, Traffic):
    the bytes are counted for `element_bytes`-wide inputs (2: fp16/bf16) and float32 statistics,
    as a GPU kernel would move them; the arithmetic here runs in `q`'s dtype."""
    b, h, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    out = torch.empty_like(q)
    lse = torch.empty(b, h, n, dtype=torch.float32, device=q.device)
    traffic = Traffic()
    for i in range(0, n, block_q):
        qi = q[:, :, i : i + block_q]
        traffic.add("Q", qi, element_bytes=element_bytes)
        rows = qi.shape[2]
        m = torch.full((b, h, rows), float("-inf"), dtype=torch.float32, device=q.device)
        row_sum = torch.zeros(b, h, rows, dtype=torch.float32, device=q.device)
        acc = torch.zeros(b, h, rows, d, dtype=torch.float32, device=q.device)
        last_key = min(n, i + rows) if causal else n  # causal: keys after the block's last query never count
        for j in range(0, last_key, block_k):
            kj, vj = k[:, :, j : j + block_k], v[:, :, j : j + block_k]
            traffic.add("K", kj, element_bytes=element_bytes)
            traffic.add("V", vj, element_bytes=element_bytes)
            s = (qi @ kj.transpose(-2, -1)).float() * scale  # (rows x block_k): lives on chip
            if causal and j + kj.shape[2] > i:
                query = torch.arange(i, i + rows, device=q.device)[:, None]
                key = torch.arange(j, j + kj.shape[2], device=q.device)[None, :]
                s = s.masked_fill(key > query, float("-inf"))
            m_new = torch.maximum(m, s.max(dim=-1).values)
            p = torch.exp(s - m_new[..., None])
            correction = torch.exp(m - m_new)
            row_sum = row_sum * correction + p.sum(dim=-1)
            acc = acc * correction[..., None] + p.to(v.dtype).float() @ vj.float()
            m = m_new
        out[:, :, i : i + rows] = (acc / row_sum[..., None]).to(q.dtype)
        lse[:, :, i : i + rows] = m + torch.log(row_sum)
        traffic.add("O", out[:, :, i : i + rows], write=True, element_bytes=element_bytes)
        traffic.add("LSE", lse[:, :, i : i + rows], write=True)
    return out, lse, traffic


def tiled_backward(q, k, v, out, lse, grad_out, block_q: int = 64, block_k: int = 64, causal: bool = False):
    """The gradients (dQ, dK, dV) of `tiled_forward`, recomputing each block's probabilities from Q,
    K and the stored log-sum-exp: P = exp(Q Kᵀ/√d - lse); nothing of size seq x seq is kept.
    Key blocks outside, query blocks inside (FlashAttention-2's backward order)."""
    b, h, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    qf, kf, vf, of, dof = (t.float() for t in (q, k, v, out, grad_out))
    delta = (dof * of).sum(dim=-1)  # D_i = rowsum(dO ∘ O): the softmax's backward needs only this
    dq = torch.zeros_like(qf)
    dk = torch.zeros_like(kf)
    dv = torch.zeros_like(vf)
    for j in range(0, n, block_k):
        kj, vj = kf[:, :, j : j + block_k], vf[:, :, j : j + block_k]
        first_query = j if causal else 0  # causal: queries before the block's first key never see it
        for i in range(first_query - first_query % block_q, n, block_q):
            qi, doi = qf[:, :, i : i + block_q], dof[:, :, i : i + block_q]
            s = qi @ kj.transpose(-2, -1) * scale
            if causal:
                query = torch.arange(i, i + qi.shape[2], device=q.device)[:, None]
                key = torch.arange(j, j + kj.shape[2], device=q.device)[None, :]
                s = s.masked_fill(key > query, float("-inf"))
            p = torch.exp(s - lse[:, :, i : i + qi.shape[2], None])  # recomputed, not stored
            dv[:, :, j : j + block_k] += p.transpose(-2, -1) @ doi
            dp = doi @ vj.transpose(-2, -1)
            ds = p * (dp - delta[:, :, i : i + qi.shape[2], None])
            dq[:, :, i : i + block_q] += ds @ kj * scale
            dk[:, :, j : j + block_k] += ds.transpose(-2, -1) @ qi * scale
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def naive_bytes(n: int, d: int, element_bytes: int = 2, batch_heads: int = 1) -> int:
    """Main-memory traffic of standard attention (the paper's Algorithm 0): read Q and K, write S
    (2Nd + N²); read S, write P (2N²); read P and V, write O (N² + 2Nd): 4Nd + 4N² elements, Θ(Nd + N²)."""
    return batch_heads * element_bytes * (4 * n * d + 4 * n * n)


def tiled_bytes(
    n: int, d: int, block_q: int, element_bytes: int = 2, batch_heads: int = 1, causal: bool = False
) -> int:
    """Main-memory traffic of the tiled forward pass: Q read once, K and V read once per query
    block (N / block_q times; about half as often when causal), O written once, the float32
    log-sum-exp written once. With block_q = Θ(M / d) for on-chip memory M: Θ(N²d²/M)."""
    blocks = math.ceil(n / block_q)
    # causal: query block i reads the key rows up to its own last one
    kv_rows = sum(min(n, (i + 1) * block_q) for i in range(blocks)) if causal else blocks * n
    return batch_heads * (element_bytes * (2 * n * d + 2 * kv_rows * d) + 4 * n)


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# The notebook's measurements


def score_memory(seq_lens, batch: int = 1, heads: int = 12, head_dim: int = 64, device: str = "cpu") -> list[dict]:
    """For each sequence length: the bytes the score matrix of naive attention really occupies
    (its tensor's storage), and on a GPU the peak memory naive attention and SDPA's flash-style
    kernels add to their inputs in one forward pass."""
    rows = []
    dtype = torch.float16 if device == "cuda" else torch.float32
    for n in seq_lens:
        q, k, v = (torch.randn(batch, heads, n, head_dim, device=device, dtype=dtype) for _ in range(3))
        scores = q @ k.transpose(-2, -1)
        row = {"seq": n, "score_bytes": scores.untyped_storage().nbytes()}
        del scores
        if device == "cuda":
            row["naive_peak_mib"] = timing.peak_mib(lambda: naive_attention(q, k, v, causal=True))  # noqa: B023
            row["sdpa_peak_mib"] = timing.peak_mib(
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: B023
            )
        rows.append(row)
    return rows


def memory_plot(rows: list[dict], path) -> object:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    seqs = [r["seq"] for r in rows]
    ax.loglog(seqs, [r["score_bytes"] / 2**20 for r in rows], "o-", label="the score matrix (naive)")
    if rows and rows[0].get("sdpa_peak_mib") is not None:
        ax.loglog(seqs, [r["naive_peak_mib"] for r in rows], "s--", label="naive attention, peak added")
        ax.loglog(seqs, [r["sdpa_peak_mib"] for r in rows], "^-", label="SDPA (flash), peak added")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    ax.set_title("Memory of attention's S x S scores (it grows as S²)")
    return plots.save(fig, path)


def traffic_plot(seq_lens, head_dim: int, block_qs, path, counted: dict | None = None) -> object:
    """Main-memory bytes per (batch, head) of naive attention and of the tiled pass per query block
    size, by the formulas; `counted` ({seq: bytes}) adds what `tiled_forward` counted."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.loglog(seq_lens, [naive_bytes(n, head_dim) / 2**20 for n in seq_lens], "o-", label="naive: 4Nd + 4N²")
    for bq in block_qs:
        ax.loglog(
            seq_lens,
            [tiled_bytes(n, head_dim, bq) / 2**20 for n in seq_lens],
            ".-",
            label=f"tiled, {bq} queries per tile",
        )
    if counted:
        ax.loglog(list(counted), [b / 2**20 for b in counted.values()], "kx", label="counted by tiled_forward")
    ax.set_xlabel("sequence length N")
    ax.set_ylabel(f"MiB read + written (fp16, d = {head_dim})")
    ax.legend(fontsize=8)
    return plots.save(fig, path)
