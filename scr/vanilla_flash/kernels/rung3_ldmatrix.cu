// Rung 3: the tensor cores' operands loaded with ldmatrix. One instruction gives each lane its part of four
// 8x8 tiles straight from shared memory (.trans for V, whose columns the product needs): a quarter of the
// load instructions of rung 2, each 16 bytes wide.
#include "common.cuh"

constexpr int BLOCK_M = 64, BLOCK_N = 64, THREADS = 128;  // 4 warps, 16 query rows each

// where chunk c (8 halves, 16 bytes) of row r is stored: rows one after the other
template <int D>
__device__ __forceinline__ int position(int r, int c) { return r * D + c * 8; }

template <int D>
__global__ void __launch_bounds__(THREADS) attention_forward(const Params p) {
  extern __shared__ __align__(16) __half smem[];
  __half* qs = smem;
  __half* ks = qs + BLOCK_M * D;
  __half* vs = ks + BLOCK_N * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // the warp's scores (16 x 64 fp32); P (fp16) is written over their first half, the row factors after it
  float* ss = reinterpret_cast<float*>(vs + BLOCK_N * D) + warp * 16 * BLOCK_N;
  __half* ps = reinterpret_cast<__half*>(ss);
  float* alpha_s = ss + 8 * BLOCK_N;
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int q0 = query_tile(p) * BLOCK_M, row = q0 + warp * 16 + g;  // this thread's rows: row, row + 8

  load_tile<BLOCK_M, D, THREADS>(p.q + head, q0, p.n, [&](int r, int c) { return qs + position<D>(r, c); });
  __syncthreads();
  uint32_t qf[D / 8][2];  // the warp's 16 query rows as A fragments, one per 8 columns
  for (int kk = 0; kk < D / 8; kk += 2) {
    uint32_t r[4];
    ldmatrix_x4(r, qs + position<D>(warp * 16 + (lane & 15), kk + (lane >> 4)));
    qf[kk][0] = r[0], qf[kk][1] = r[1], qf[kk + 1][0] = r[2], qf[kk + 1][1] = r[3];
  }

  float o[D / 8][4] = {};
  float m[16], l[16];  // every lane keeps the maximum and sum of all 16 rows of its warp
  for (int r = 0; r < 16; r++) m[r] = -INFINITY, l[r] = 0.f;
  const int kv_end = p.causal ? min(p.n, q0 + BLOCK_M) : p.n;
  for (int k0 = 0; k0 < kv_end; k0 += BLOCK_N) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile<BLOCK_N, D, THREADS>(p.k + head, k0, p.n, [&](int r, int c) { return ks + position<D>(r, c); });
    load_tile<BLOCK_N, D, THREADS>(p.v + head, k0, p.n, [&](int r, int c) { return vs + position<D>(r, c); });
    __syncthreads();

    float s[BLOCK_N / 8][4] = {};  // S = Q Kᵀ, 16 x 64: n-tile j holds keys 8j..8j+7
    for (int j = 0; j < BLOCK_N / 8; j++)
      for (int kk = 0; kk < D / 8; kk += 4) {
        uint32_t b[4];
        ldmatrix_x4(b, ks + position<D>(8 * j + (lane & 7), kk + (lane >> 3)));
        for (int i = 0; i < 4; i++) mma_m16n8k8(s[j], qf[kk + i], b[i]);
      }
    for (int j = 0; j < BLOCK_N / 8; j++) {  // to shared memory, where the softmax reads the rows
      *reinterpret_cast<float2*>(ss + g * BLOCK_N + 8 * j + 2 * t) = make_float2(s[j][0], s[j][1]);
      *reinterpret_cast<float2*>(ss + (g + 8) * BLOCK_N + 8 * j + 2 * t) = make_float2(s[j][2], s[j][3]);
    }
    __syncwarp();

    // the online softmax, a row at a time: lane L holds keys L and L + 32 of each row
    float sc[16][2];
    for (int r = 0; r < 16; r++)
      for (int e = 0; e < 2; e++) {
        const int key = k0 + lane + 32 * e, query = q0 + warp * 16 + r;
        const bool masked = key >= p.n || (p.causal && key > query);
        sc[r][e] = masked ? -INFINITY : ss[r * BLOCK_N + lane + 32 * e];
      }
    __syncwarp();  // every lane has read its scores: P may be written over them
    for (int r = 0; r < 16; r++) {
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
      ps[r * BLOCK_N + lane] = __float2half(e0);
      ps[r * BLOCK_N + lane + 32] = __float2half(e1);
      if (lane == 0) alpha_s[r] = alpha;
    }
    __syncwarp();
    for (int dn = 0; dn < D / 8; dn++) {
      o[dn][0] *= alpha_s[g], o[dn][1] *= alpha_s[g];
      o[dn][2] *= alpha_s[g + 8], o[dn][3] *= alpha_s[g + 8];
    }

    for (int j = 0; j < BLOCK_N / 8; j += 2) {  // O += P V
      uint32_t a[4];
      ldmatrix_x4(a, ps + (lane & 15) * BLOCK_N + (j + (lane >> 4)) * 8);
      const uint32_t pf[2][2] = {{a[0], a[1]}, {a[2], a[3]}};
      for (int jj = 0; jj < 2; jj++)
        for (int dn = 0; dn < D / 8; dn += 4) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, vs + position<D>(8 * (j + jj) + (lane & 7), dn + (lane >> 3)));
          for (int i = 0; i < 4; i++) mma_m16n8k8(o[dn + i], pf[jj], b[i]);
        }
    }
    __syncwarp();  // the next tile's scores go where P is
  }

  if (lane == 0)
    for (int r = 0; r < 16; r++) alpha_s[r] = l[r];  // the row sums, for the lanes that hold each row
  __syncwarp();
  for (int h = 0; h < 2; h++) {
    const int r = row + 8 * h;
    if (r >= p.n) continue;
    const float inv = 1.f / alpha_s[g + 8 * h];
    __half* out = p.o + head + (size_t)r * D;
    for (int dn = 0; dn < D / 8; dn++)
      *reinterpret_cast<__half2*>(out + 8 * dn + 2 * t) = __floats2half2_rn(o[dn][2 * h] * inv, o[dn][2 * h + 1] * inv);
  }
  if (lane == 0)
    for (int r = 0; r < 16; r++)
      if (q0 + warp * 16 + r < p.n) p.lse[(size_t)blockIdx.y * p.n + q0 + warp * 16 + r] = (m[r] + log2f(l[r])) * LN2;
}

constexpr int smem_bytes(int d) { return (BLOCK_M + 2 * BLOCK_N) * d * 2 + BLOCK_M * BLOCK_N * 4; }

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal) {
  return launch_forward(q, k, v, causal, BLOCK_M, THREADS, attention_forward<64>, attention_forward<128>,
                        smem_bytes(64), smem_bytes(128));
}
