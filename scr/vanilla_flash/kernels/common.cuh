// What every rung of the ladder shares: the call from PyTorch, the tile loads, and the tensor-core
// instructions written as PTX. Only instructions a T4 (sm_75) has: the same code runs on every later GPU.
#pragma once
#include <torch/extension.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cstdint>

struct Params {
  const __half* __restrict__ q;  // (batch x heads, n, head_dim), contiguous
  const __half* __restrict__ k;
  const __half* __restrict__ v;
  __half* __restrict__ o;
  float* __restrict__ lse;       // (batch x heads, n): log-sum-exp of each row, for the backward pass
  int n;                         // sequence length
  float scale_log2;              // softmax scale x log2(e): scores are exponentiated with exp2
  bool causal;
};

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

// The query tile a block works on. Under a causal mask the last tiles have the most keys to read:
// they are handed out first, so that the longest blocks do not start last.
__device__ __forceinline__ int query_tile(const Params& p) {
  return p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
}

// rows x D halves from global memory (row `first` on, of `n`) into shared memory, 16 bytes a thread at a
// time; rows past the end are zeros. `at(r, c)` is where chunk c (8 halves) of row r goes in shared memory.
template <int ROWS, int D, int THREADS, typename At>
__device__ __forceinline__ void load_tile(const __half* src, int first, int n, At at) {
  constexpr int CHUNKS = D / 8;
  for (int i = threadIdx.x; i < ROWS * CHUNKS; i += THREADS) {
    const int r = i / CHUNKS, c = i % CHUNKS;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (first + r < n) value = *reinterpret_cast<const uint4*>(src + (size_t)(first + r) * D + c * 8);
    *reinterpret_cast<uint4*>(at(r, c)) = value;
  }
}

// D = A x B + D for one 16x8 tile: A 16x8 (two fp16 pairs a thread), B 8x8 (one pair), D fp32 (four).
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4], const uint32_t (&a)[2], uint32_t b) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b));
}

// Four 8x8 fp16 matrices from shared memory into registers: lanes 8i..8i+7 give the row addresses of
// matrix i; each lane gets, of every matrix, two neighbours of row lane/4 (.trans: of column lane/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* row) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* row) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// `kernel` over `grid` on PyTorch's current stream, asking for more than the default 48 KiB of dynamic shared
// memory where it needs it.
template <typename Kernel, typename P>
void launch(Kernel kernel, dim3 grid, int threads, int smem, const P& p) {
  if (smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<grid, threads, smem, at::cuda::getCurrentCUDAStream()>>>(p);
}

inline void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(q.is_cuda() && q.scalar_type() == torch::kHalf && k.scalar_type() == torch::kHalf &&
              v.scalar_type() == torch::kHalf, "q, k and v must be float16 CUDA tensors");
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "q, k and v must have the same (batch, heads, seq, head_dim) shape");
  TORCH_CHECK(q.size(3) == 64 || q.size(3) == 128, "this kernel is written for head dims 64 and 128, not ",
              q.size(3));
}

// The forward call from PyTorch: checks, the output and log-sum-exp tensors, one block per (query tile,
// batch x head). `kernel64`/`kernel128` are the rung's kernel for each head dim, `smem64`/`smem128`
// the dynamic shared memory each needs.
template <typename K64, typename K128>
std::vector<torch::Tensor> launch_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal,
                                          int block_m, int threads, K64 kernel64, K128 kernel128,
                                          int smem64, int smem128) {
  check_inputs(q, k, v);
  const int b = q.size(0), h = q.size(1), n = q.size(2), d = q.size(3);
  q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  auto o = torch::empty_like(q);
  auto lse = torch::empty({b, h, n}, q.options().dtype(torch::kFloat));
  if (n == 0 || b * h == 0) return {o, lse};
  Params p{reinterpret_cast<const __half*>(q.data_ptr<at::Half>()),
           reinterpret_cast<const __half*>(k.data_ptr<at::Half>()),
           reinterpret_cast<const __half*>(v.data_ptr<at::Half>()),
           reinterpret_cast<__half*>(o.data_ptr<at::Half>()), lse.data_ptr<float>(), n,
           LOG2E / sqrtf((float)d), causal};
  const dim3 grid((n + block_m - 1) / block_m, b * h);
  if (d == 64) launch(kernel64, grid, threads, smem64, p);
  else launch(kernel128, grid, threads, smem128, p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {o, lse};
}

// What the backward rungs read and write.
struct BackwardParams {
  const __half* __restrict__ q;
  const __half* __restrict__ k;
  const __half* __restrict__ v;
  const __half* __restrict__ dout;
  const float* __restrict__ lse;    // (batch x heads, n), natural log, from the forward pass
  const float* __restrict__ delta;  // (batch x heads, n): D = rowsum(dO ∘ O)
  float* __restrict__ dq;           // (batch x heads, n, head_dim) float32, zeroed: the kernels add dS K into it
  __half* __restrict__ dk;
  __half* __restrict__ dv;
  int n;
  float scale, scale_log2;          // softmax scale, and times log2(e) for exp2
  bool causal;
};

// The backward call from PyTorch: checks, D = rowsum(dO ∘ O), the gradient tensors, then `run(p, d, grid)`,
// which launches the rung's kernels for head dim d, one block per `block_n` rows and batch x head.
template <typename Run>
std::vector<torch::Tensor> launch_backward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor o,
                                           torch::Tensor lse, torch::Tensor dout, bool causal, int block_n,
                                           Run run) {
  check_inputs(q, k, v);
  TORCH_CHECK(dout.scalar_type() == torch::kHalf && dout.sizes() == q.sizes() && o.sizes() == q.sizes(),
              "o and dout must be float16 tensors of q's shape");
  const int b = q.size(0), h = q.size(1), n = q.size(2), d = q.size(3);
  q = q.contiguous(); k = k.contiguous(); v = v.contiguous(); dout = dout.contiguous(); lse = lse.contiguous();
  auto delta = (dout.to(torch::kFloat) * o.to(torch::kFloat)).sum(-1).contiguous();
  auto dq = torch::zeros(q.sizes(), q.options().dtype(torch::kFloat));
  auto dk = torch::empty_like(k), dv = torch::empty_like(v);
  if (n == 0 || b * h == 0) return {dq.to(torch::kHalf), dk, dv};
  BackwardParams p{reinterpret_cast<const __half*>(q.data_ptr<at::Half>()),
                   reinterpret_cast<const __half*>(k.data_ptr<at::Half>()),
                   reinterpret_cast<const __half*>(v.data_ptr<at::Half>()),
                   reinterpret_cast<const __half*>(dout.data_ptr<at::Half>()), lse.data_ptr<float>(),
                   delta.data_ptr<float>(), dq.data_ptr<float>(),
                   reinterpret_cast<__half*>(dk.data_ptr<at::Half>()),
                   reinterpret_cast<__half*>(dv.data_ptr<at::Half>()), n, 1.0f / sqrtf((float)d),
                   LOG2E / sqrtf((float)d), causal};
  run(p, d, dim3((n + block_n - 1) / block_n, b * h));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dq.to(torch::kHalf), dk, dv};
}
