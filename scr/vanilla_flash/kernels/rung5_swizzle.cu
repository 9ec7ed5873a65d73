// Rung 5: shared memory without bank conflicts. The 16-byte chunk c of row r is stored at chunk c ^ (r % 8)
// of its row, so the 8 rows that one ldmatrix reads at the same column lie in 8 different groups of banks
// (unswizzled, rows 128 or 256 bytes apart all start in the same bank: an 8-way conflict).
#include "common.cuh"

constexpr int BLOCK_M = 64, BLOCK_N = 64, THREADS = 128;  // 4 warps, 16 query rows each

// where chunk c (8 halves, 16 bytes) of row r is stored: at chunk c XOR (r % 8) of its row
template <int D>
__device__ __forceinline__ int position(int r, int c) { return r * D + ((c ^ (r & 7)) << 3); }

template <int D>
__global__ void __launch_bounds__(THREADS) attention_forward(const Params p) {
  extern __shared__ __align__(16) __half smem[];
  __half* qs = smem;
  __half* ks = qs + BLOCK_M * D;
  __half* vs = ks + BLOCK_N * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
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
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows row and row + 8 (l: this thread's part)
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
    if (k0 + BLOCK_N > p.n || (p.causal && k0 + BLOCK_N > q0 + warp * 16))  // keys past the end or the diagonal
      for (int j = 0; j < BLOCK_N / 8; j++)
        for (int e = 0; e < 4; e++) {
          const int key = k0 + 8 * j + 2 * t + (e & 1), query = row + (e >> 1) * 8;
          if (key >= p.n || (p.causal && key > query)) s[j][e] = -INFINITY;
        }

    // the online softmax, in registers: the four lanes of a row share its maximum through shuffles
    float tile_max[2] = {-INFINITY, -INFINITY};
    for (int j = 0; j < BLOCK_N / 8; j++) {
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[j][0], s[j][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[j][2], s[j][3]));
    }
    float base[2];
    for (int h = 0; h < 2; h++) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffff, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffff, tile_max[h], 2));
      const float m_new = fmaxf(m[h], tile_max[h] * p.scale_log2);
      base[h] = m_new == -INFINITY ? 0.f : m_new;  // a row with no key yet: nothing to subtract
      const float alpha = exp2f(m[h] - base[h]);     // rescale what was summed under the old maximum
      l[h] *= alpha;
      for (int dn = 0; dn < D / 8; dn++) o[dn][2 * h] *= alpha, o[dn][2 * h + 1] *= alpha;
      m[h] = m_new;
    }
    uint32_t pf[BLOCK_N / 8][2];  // P, rounded to fp16: the accumulator of n-tile j is the A fragment of k-step j
    for (int j = 0; j < BLOCK_N / 8; j++) {
      float e[4];
      for (int i = 0; i < 4; i++) e[i] = exp2f(s[j][i] * p.scale_log2 - base[i >> 1]);
      l[0] += e[0] + e[1], l[1] += e[2] + e[3];
      pf[j][0] = pack_half2(e[0], e[1]), pf[j][1] = pack_half2(e[2], e[3]);
    }

    for (int j = 0; j < BLOCK_N / 8; j++)  // O += P V
      for (int dn = 0; dn < D / 8; dn += 4) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vs + position<D>(8 * j + (lane & 7), dn + (lane >> 3)));
        for (int i = 0; i < 4; i++) mma_m16n8k8(o[dn + i], pf[j], b[i]);
      }
  }

  for (int h = 0; h < 2; h++) {
    l[h] += __shfl_xor_sync(0xffffffff, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffff, l[h], 2);
    const int r = row + 8 * h;
    if (r >= p.n) continue;
    const float inv = 1.f / l[h];
    __half* out = p.o + head + (size_t)r * D;
    for (int dn = 0; dn < D / 8; dn++)
      *reinterpret_cast<__half2*>(out + 8 * dn + 2 * t) = __floats2half2_rn(o[dn][2 * h] * inv, o[dn][2 * h + 1] * inv);
    if (t == 0) p.lse[(size_t)blockIdx.y * p.n + r] = (m[h] + log2f(l[h])) * LN2;
  }
}

constexpr int smem_bytes(int d) { return (BLOCK_M + 2 * BLOCK_N) * d * 2; }

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal) {
  return launch_forward(q, k, v, causal, BLOCK_M, THREADS, attention_forward<64>, attention_forward<128>,
                        smem_bytes(64), smem_bytes(128));
}
