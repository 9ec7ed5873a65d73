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
- `KERNEL_SOURCE`, `build_kernel`, `kernel_forward`: the same forward pass as a small CUDA kernel of
  one's own (fp16 in, fp32 accumulation, one thread block per (batch x head, query tile), the key
  and value tiles staged in shared memory), compiled with `torch.utils.cpp_extension.load_inline`
  for this GPU's architecture or as `compute_75` PTX. No tensor cores, no warp-level matrix
  instructions, no pipelined copies: what the library adds is measured against it.

- `score_memory`, `traffic_plot`, `memory_plot`, `compare_on_gpu`: the notebook's measurements.

Tensors are (batch, heads, seq, head_dim) throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vanilla_flash.attention import registry as attention
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
# The same forward pass as a CUDA kernel of one's own. One thread block per (batch x head, tile of
# BLOCK_Q query rows), one thread per query row: the thread keeps its query row, its running
# maximum and sum and its output row in registers (float32); the block loads each tile of BLOCK_K
# keys and values into shared memory once, and every thread reads it from there. fp16 in and out.

BLOCK_Q, BLOCK_K = 64, 32
HEAD_DIMS = (64, 128)

KERNEL_SOURCE = r"""
#include <torch/extension.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

template <int D, int BQ, int BK>
__global__ void vf_flash_forward(const __half* __restrict__ q, const __half* __restrict__ k,
                                 const __half* __restrict__ v, __half* __restrict__ o,
                                 float* __restrict__ lse, int n, float scale, bool causal) {
  const size_t head = (size_t)blockIdx.y * n * D;  // this (batch, head)'s (n x D) matrices
  const int row = blockIdx.x * BQ + threadIdx.x;    // this thread's query row
  const bool active = row < n;
  __shared__ __half ks[BK][D];
  __shared__ __half vs[BK][D];
  float qr[D], acc[D];
  for (int c = 0; c < D; c++) {
    qr[c] = active ? __half2float(q[head + (size_t)row * D + c]) * scale : 0.f;
    acc[c] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int kv_end = causal ? min(n, (int)(blockIdx.x + 1) * BQ) : n;
  for (int j0 = 0; j0 < kv_end; j0 += BK) {
    for (int i = threadIdx.x; i < BK * D; i += BQ) {  // the block loads the tile together
      const int r = i / D, c = i % D, key = j0 + r;
      ks[r][c] = key < n ? k[head + (size_t)key * D + c] : __float2half(0.f);
      vs[r][c] = key < n ? v[head + (size_t)key * D + c] : __float2half(0.f);
    }
    __syncthreads();
    int keys = min(BK, n - j0);
    if (causal) keys = min(keys, row - j0 + 1);
    if (active && keys > 0) {
      float s[BK], tile_max = -INFINITY;
      for (int r = 0; r < keys; r++) {
        float dot = 0.f;
        for (int c = 0; c < D; c++) dot += qr[c] * __half2float(ks[r][c]);
        s[r] = dot;
        tile_max = fmaxf(tile_max, dot);
      }
      const float m_new = fmaxf(m, tile_max);
      const float correction = __expf(m - m_new);  // rescale what was summed under the old maximum
      l *= correction;
      for (int c = 0; c < D; c++) acc[c] *= correction;
      for (int r = 0; r < keys; r++) {
        const float p = __expf(s[r] - m_new);
        l += p;
        for (int c = 0; c < D; c++) acc[c] += p * __half2float(vs[r][c]);
      }
      m = m_new;
    }
    __syncthreads();
  }
  if (active) {
    for (int c = 0; c < D; c++) o[head + (size_t)row * D + c] = __float2half(acc[c] / l);
    lse[(size_t)blockIdx.y * n + row] = m + logf(l);
  }
}

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal) {
  TORCH_CHECK(q.is_cuda() && q.scalar_type() == torch::kHalf && k.scalar_type() == torch::kHalf &&
              v.scalar_type() == torch::kHalf, "q, k and v must be float16 CUDA tensors");
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "q, k and v must have the same (batch, heads, seq, head_dim) shape");
  q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  const int b = q.size(0), h = q.size(1), n = q.size(2), d = q.size(3);
  auto o = torch::empty_like(q);
  auto lse = torch::empty({b, h, n}, q.options().dtype(torch::kFloat));
  const dim3 grid((n + BLOCK_Q - 1) / BLOCK_Q, b * h);
  const float scale = 1.0f / sqrtf((float)d);
  auto args = [&](auto kernel) {
    kernel<<<grid, BLOCK_Q, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const __half*>(q.data_ptr<at::Half>()),
        reinterpret_cast<const __half*>(k.data_ptr<at::Half>()),
        reinterpret_cast<const __half*>(v.data_ptr<at::Half>()),
        reinterpret_cast<__half*>(o.data_ptr<at::Half>()),
        lse.data_ptr<float>(), n, scale, causal);
  };
  if (d == 64) args(vf_flash_forward<64, BLOCK_Q, BLOCK_K>);
  else if (d == 128) args(vf_flash_forward<128, BLOCK_Q, BLOCK_K>);
  else TORCH_CHECK(false, "this kernel is written for head dims 64 and 128, not ", d);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {o, lse};
}
"""
CPP_SOURCE = "std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal);"


def gencode(arch: str) -> str:
    """nvcc's flag for `arch`: "90" is machine code for sm_90; "compute_75" is PTX alone, which the
    driver compiles when the module loads, for whatever GPU is there (a T4's build run on an H200)."""
    number = arch.removeprefix("compute_")
    return f"-gencode=arch=compute_{number},code={'compute' if arch.startswith('compute_') else 'sm'}_{number}"


def build_kernel(arch: str | None = None, build_dir: str | None = None, verbose: bool = False):
    """Compile `KERNEL_SOURCE` for `arch` (default: this GPU's) with `load_inline` and return the
    module; its `forward(q, k, v, causal)` returns (output, log-sum-exp). Needs a CUDA toolkit."""
    from torch.utils.cpp_extension import load_inline

    if arch is None:
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}{minor}"
    defines = [f"-DBLOCK_Q={BLOCK_Q}", f"-DBLOCK_K={BLOCK_K}"]
    return load_inline(
        name=f"vf_flash_forward_{arch}",
        cpp_sources=CPP_SOURCE,
        cuda_sources=KERNEL_SOURCE,
        functions=["forward"],
        extra_cuda_cflags=["-O3", "--use_fast_math", gencode(arch), *defines],
        build_directory=build_dir,
        verbose=verbose,
    )


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


def compare_on_gpu(
    module, libraries=(), batch: int = 16, heads: int = 12, seq: int = 1024, head_dim: int = 64, causal: bool = True
) -> dict:
    """The kernel of `build_kernel` and each of `libraries` (attention backends such as flash_attn_2)
    against an fp32 reference, and their times against naive PyTorch attention."""
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, seq, head_dim, device="cuda", dtype=torch.float16, generator=g) for _ in range(3)
    )
    reference = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    out, _ = module.forward(q, k, v, causal)

    def rel(x):
        return ((x.float() - reference).norm() / reference.norm()).item()

    row = {"shape": f"B{batch} H{heads} S{seq} D{head_dim}", "causal": causal, "own_kernel_rel_err": rel(out)}
    row["own_kernel_ms"] = timing.timeit(lambda: module.forward(q, k, v, causal))
    row["naive_ms"] = timing.timeit(lambda: naive_attention(q, k, v, causal))
    row["libraries"] = {
        name: {
            "rel_err": rel(attention.attend(name, q, k, v, causal=causal).transpose(1, 2)),
            "ms": timing.timeit(lambda name=name: attention.attend(name, q, k, v, causal=causal)),
        }
        for name in libraries
    }
    return row
