// Rung 0: one thread per query row. The thread keeps its query row, its running maximum and sum and its
// output row in registers (fp32); the block loads each tile of BLOCK_N keys and values into shared memory
// once, and every thread reads it from there. Scalar fp32 arithmetic: no tensor cores.
#include "common.cuh"

constexpr int BLOCK_M = 64, BLOCK_N = 32, THREADS = BLOCK_M;

template <int D>
__global__ void __launch_bounds__(THREADS) attention_forward(const Params p) {
  __shared__ __align__(16) __half ks[BLOCK_N][D];
  __shared__ __align__(16) __half vs[BLOCK_N][D];
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int tile = query_tile(p), row = tile * BLOCK_M + threadIdx.x;
  const bool active = row < p.n;
  float qr[D], acc[D];
  for (int c = 0; c < D; c++) {
    qr[c] = active ? __half2float(p.q[head + (size_t)row * D + c]) * p.scale_log2 : 0.f;
    acc[c] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int kv_end = p.causal ? min(p.n, (tile + 1) * BLOCK_M) : p.n;
  for (int j0 = 0; j0 < kv_end; j0 += BLOCK_N) {
    load_tile<BLOCK_N, D, THREADS>(p.k + head, j0, p.n, [&](int r, int c) { return &ks[r][c * 8]; });
    load_tile<BLOCK_N, D, THREADS>(p.v + head, j0, p.n, [&](int r, int c) { return &vs[r][c * 8]; });
    __syncthreads();
    int keys = min(BLOCK_N, p.n - j0);
    if (p.causal) keys = min(keys, row - j0 + 1);
    if (active && keys > 0) {
      float s[BLOCK_N], tile_max = -INFINITY;
      for (int r = 0; r < keys; r++) {
        float dot = 0.f;
        for (int c = 0; c < D; c++) dot += qr[c] * __half2float(ks[r][c]);
        s[r] = dot;
        tile_max = fmaxf(tile_max, dot);
      }
      const float m_new = fmaxf(m, tile_max);
      const float correction = exp2f(m - m_new);  // rescale what was summed under the old maximum
      l *= correction;
      for (int c = 0; c < D; c++) acc[c] *= correction;
      for (int r = 0; r < keys; r++) {
        const float pr = exp2f(s[r] - m_new);
        l += pr;
        for (int c = 0; c < D; c++) acc[c] += pr * __half2float(vs[r][c]);
      }
      m = m_new;
    }
    __syncthreads();
  }
  if (active) {
    for (int c = 0; c < D; c++) p.o[head + (size_t)row * D + c] = __float2half(acc[c] / l);
    p.lse[(size_t)blockIdx.y * p.n + row] = (m + log2f(l)) * LN2;
  }
}

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal) {
  return launch_forward(q, k, v, causal, BLOCK_M, THREADS, attention_forward<64>, attention_forward<128>, 0, 0);
}
