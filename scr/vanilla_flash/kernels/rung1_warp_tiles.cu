// Rung 1: a warp per 16 query rows. The block holds a tile of 64 queries and, in turn, tiles of 64 keys and
// values in shared memory; each warp computes its 16 x 64 scores with lane L taking keys L and L + 32, keeps
// the softmax of each row across its 32 lanes (shuffles), and then takes columns L, L + 32, ... of the output.
// Still scalar fp32 arithmetic, but every value read from shared memory now serves 16 rows, not one.
#include "common.cuh"

constexpr int BLOCK_M = 64, BLOCK_N = 64, THREADS = 128;  // 4 warps, 16 query rows each

template <int D>
__global__ void __launch_bounds__(THREADS) attention_forward(const Params p) {
  extern __shared__ __align__(16) __half smem[];
  __half* qs = smem;               // 64 x D, a row per query
  __half* kt = qs + BLOCK_M * D;   // D x 64: K transposed, so that lanes read 32 neighbouring keys
  __half* vs = kt + BLOCK_N * D;   // 64 x D
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __half* ps = vs + BLOCK_N * D + warp * 16 * BLOCK_N;  // this warp's 16 x 64 probabilities
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int q0 = query_tile(p) * BLOCK_M, first = q0 + warp * 16;  // the warp's rows: first .. first + 15

  load_tile<BLOCK_M, D, THREADS>(p.q + head, q0, p.n, [&](int r, int c) { return qs + r * D + c * 8; });
  float acc[16][D / 32] = {};  // lane L: columns L, L + 32, ... of each of the 16 rows
  float m[16], l[16];
  for (int r = 0; r < 16; r++) m[r] = -INFINITY, l[r] = 0.f;
  const int kv_end = p.causal ? min(p.n, q0 + BLOCK_M) : p.n;
  for (int k0 = 0; k0 < kv_end; k0 += BLOCK_N) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile<BLOCK_N, D, THREADS>(p.v + head, k0, p.n, [&](int r, int c) { return vs + r * D + c * 8; });
    for (int i = threadIdx.x; i < BLOCK_N * D / 8; i += THREADS) {  // K, transposed on the way in
      const int r = i / (D / 8), c = i % (D / 8);
      uint4 chunk = make_uint4(0, 0, 0, 0);
      if (k0 + r < p.n) chunk = *reinterpret_cast<const uint4*>(p.k + head + (size_t)(k0 + r) * D + c * 8);
      const __half* h = reinterpret_cast<const __half*>(&chunk);
      for (int e = 0; e < 8; e++) kt[(c * 8 + e) * BLOCK_N + r] = h[e];
    }
    __syncthreads();

    float sc[16][2] = {};  // scores of the warp's 16 rows with keys k0 + L and k0 + L + 32
    for (int c = 0; c < D; c++) {
      const float k_a = __half2float(kt[c * BLOCK_N + lane]), k_b = __half2float(kt[c * BLOCK_N + lane + 32]);
      for (int r = 0; r < 16; r++) {
        const float q = __half2float(qs[(warp * 16 + r) * D + c]);  // the same address in every lane: one read
        sc[r][0] += q * k_a, sc[r][1] += q * k_b;
      }
    }
    for (int r = 0; r < 16; r++) {  // the online softmax, a row at a time across the warp
      for (int e = 0; e < 2; e++) {
        const int key = k0 + lane + 32 * e;
        if (key >= p.n || (p.causal && key > first + r)) sc[r][e] = -INFINITY;
      }
      float tile_max = fmaxf(sc[r][0], sc[r][1]);
      for (int offset = 16; offset > 0; offset /= 2)
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, offset));
      const float m_new = fmaxf(m[r], tile_max * p.scale_log2);
      const float base = m_new == -INFINITY ? 0.f : m_new;  // a row with no key yet: nothing to subtract
      const float alpha = exp2f(m[r] - base);                // rescale what was summed under the old maximum
      const float e0 = exp2f(sc[r][0] * p.scale_log2 - base), e1 = exp2f(sc[r][1] * p.scale_log2 - base);
      float sum = e0 + e1;
      for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffff, sum, offset);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      for (int i = 0; i < D / 32; i++) acc[r][i] *= alpha;
      ps[r * BLOCK_N + lane] = __float2half(e0);
      ps[r * BLOCK_N + lane + 32] = __float2half(e1);
    }
    __syncwarp();
    for (int key = 0; key < BLOCK_N; key++) {  // O += P V: lane L reads its columns of the value row once
      float v[D / 32];
      for (int i = 0; i < D / 32; i++) v[i] = __half2float(vs[key * D + lane + 32 * i]);
      for (int r = 0; r < 16; r++) {
        const float pr = __half2float(ps[r * BLOCK_N + key]);
        for (int i = 0; i < D / 32; i++) acc[r][i] += pr * v[i];
      }
    }
    __syncwarp();
  }

  for (int r = 0; r < 16; r++) {
    if (first + r >= p.n) break;
    for (int i = 0; i < D / 32; i++)
      p.o[head + (size_t)(first + r) * D + lane + 32 * i] = __float2half(acc[r][i] / l[r]);
    if (lane == 0) p.lse[(size_t)blockIdx.y * p.n + first + r] = (m[r] + log2f(l[r])) * LN2;
  }
}

constexpr int smem_bytes(int d) { return (BLOCK_M + 2 * BLOCK_N) * d * 2 + BLOCK_M * BLOCK_N * 2; }

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal) {
  return launch_forward(q, k, v, causal, BLOCK_M, THREADS, attention_forward<64>, attention_forward<128>,
                        smem_bytes(64), smem_bytes(128));
}
