// The backward pass on the tensor cores, FlashAttention-2's loop order: a block owns a tile of 64 keys and
// walks the query tiles; each warp owns 16 of the keys. Per query tile it recomputes Pᵀ = exp(scale·K Qᵀ − lse)
// from the stored log-sum-exp, and accumulates dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − D) and dK += dSᵀ Q
// in registers; dQ += dS K goes through shared memory (dSᵀ transposed by ldmatrix) and is added to a float32
// buffer in global memory. D = rowsum(dO ∘ O) and the final dQ are computed by PyTorch around it.
#include "common.cuh"

constexpr int BLOCK_N = 64, THREADS = 128;  // keys per block, 4 warps of 16 keys

// queries per step: 64 at head dim 64, 32 at 128 (so that Q, dO, K, V and dS fit a T4's 64 KiB)
template <int D>
constexpr int BLOCK_M = D == 64 ? 64 : 32;

// where chunk c (8 halves, 16 bytes) of row r of a tile D wide is stored: at chunk c XOR (r % 8) of its row
template <int D>
__device__ __forceinline__ int position(int r, int c) { return r * D + ((c ^ (r & 7)) << 3); }

// the same for dSᵀ (BLOCK_N keys x BM queries), whose rows hold BM / 8 chunks
template <int BM>
__device__ __forceinline__ int ds_position(int r, int c) { return r * BM + ((c ^ (r & (BM / 8 - 1))) << 3); }

template <int D>
__global__ void __launch_bounds__(THREADS, D == 64 ? 3 : 2) attention_backward(const BackwardParams p) {
  constexpr int BM = BLOCK_M<D>;
  extern __shared__ __align__(16) __half smem[];
  __half* ks = smem;                  // BLOCK_N x D
  __half* vs = ks + BLOCK_N * D;      // BLOCK_N x D
  __half* qs = vs + BLOCK_N * D;      // BM x D
  __half* dos = qs + BM * D;          // BM x D
  __half* dss = dos + BM * D;         // BLOCK_N x BM: dSᵀ, for dQ (swizzled: ds_position)
  float* lse_s = reinterpret_cast<float*>(dss + BLOCK_N * BM);  // BM, in log2 units
  float* delta_s = lse_s + BM;                                    // BM
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int k0 = blockIdx.x * BLOCK_N, key = k0 + warp * 16 + g;  // this thread's keys: key, key + 8

  load_tile<BLOCK_N, D, THREADS>(p.k + head, k0, p.n, [&](int r, int c) { return ks + position<D>(r, c); });
  load_tile<BLOCK_N, D, THREADS>(p.v + head, k0, p.n, [&](int r, int c) { return vs + position<D>(r, c); });

  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  const int first = p.causal ? (k0 / BM) * BM : 0;  // earlier queries see none of these keys
  for (int q0 = first; q0 < p.n; q0 += BM) {
    __syncthreads();  // every warp is done with the previous query tile
    load_tile<BM, D, THREADS>(p.q + head, q0, p.n, [&](int r, int c) { return qs + position<D>(r, c); });
    load_tile<BM, D, THREADS>(p.dout + head, q0, p.n, [&](int r, int c) { return dos + position<D>(r, c); });
    for (int i = threadIdx.x; i < BM; i += THREADS) {
      const bool inside = q0 + i < p.n;
      lse_s[i] = inside ? p.lse[(size_t)blockIdx.y * p.n + q0 + i] * LOG2E : INFINITY;
      delta_s[i] = inside ? p.delta[(size_t)blockIdx.y * p.n + q0 + i] : 0.f;
    }
    __syncthreads();

    // Sᵀ = K Qᵀ: 16 keys x BM queries; n-tile j holds queries 8j..8j+7
    float s[BM / 8][4] = {};
    for (int kk = 0; kk < D / 8; kk += 2) {
      uint32_t a[4];
      ldmatrix_x4(a, ks + position<D>(warp * 16 + (lane & 15), kk + (lane >> 4)));
      const uint32_t af[2][2] = {{a[0], a[1]}, {a[2], a[3]}};
      for (int j = 0; j < BM / 8; j += 2) {
        uint32_t b[4];  // Q rows of query tiles j and j + 1, columns of k-steps kk and kk + 1
        ldmatrix_x4(b, qs + position<D>(8 * j + (lane & 7) + ((lane >> 4) << 3), kk + ((lane >> 3) & 1)));
        mma_m16n8k8(s[j], af[0], b[0]);
        mma_m16n8k8(s[j], af[1], b[1]);
        mma_m16n8k8(s[j + 1], af[0], b[2]);
        mma_m16n8k8(s[j + 1], af[1], b[3]);
      }
    }
    // Pᵀ, recomputed from the log-sum-exp; zero past the end and above the causal diagonal
    for (int j = 0; j < BM / 8; j++)
      for (int e = 0; e < 4; e++) {
        const int query = q0 + 8 * j + 2 * t + (e & 1), my_key = key + (e >> 1) * 8;
        const bool masked = query >= p.n || my_key >= p.n || (p.causal && my_key > query);
        s[j][e] = masked ? 0.f : exp2f(s[j][e] * p.scale_log2 - lse_s[8 * j + 2 * t + (e & 1)]);
      }
    // dV += Pᵀ dO: the accumulator of query tile j, in fp16, is the A fragment of k-step j
    for (int j = 0; j < BM / 8; j++) {
      const uint32_t pf[2] = {pack_half2(s[j][0], s[j][1]), pack_half2(s[j][2], s[j][3])};
      for (int dn = 0; dn < D / 8; dn += 4) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, dos + position<D>(8 * j + (lane & 7), dn + (lane >> 3)));
        for (int i = 0; i < 4; i++) mma_m16n8k8(dv[dn + i], pf, b[i]);
      }
    }
    // dPᵀ = V dOᵀ, then dSᵀ = Pᵀ ∘ (dPᵀ − D)
    float dp[BM / 8][4] = {};
    for (int kk = 0; kk < D / 8; kk += 2) {
      uint32_t a[4];
      ldmatrix_x4(a, vs + position<D>(warp * 16 + (lane & 15), kk + (lane >> 4)));
      const uint32_t af[2][2] = {{a[0], a[1]}, {a[2], a[3]}};
      for (int j = 0; j < BM / 8; j += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, dos + position<D>(8 * j + (lane & 7) + ((lane >> 4) << 3), kk + ((lane >> 3) & 1)));
        mma_m16n8k8(dp[j], af[0], b[0]);
        mma_m16n8k8(dp[j], af[1], b[1]);
        mma_m16n8k8(dp[j + 1], af[0], b[2]);
        mma_m16n8k8(dp[j + 1], af[1], b[3]);
      }
    }
    for (int j = 0; j < BM / 8; j++)
      for (int e = 0; e < 4; e++) s[j][e] *= dp[j][e] - delta_s[8 * j + 2 * t + (e & 1)];  // s is dSᵀ now
    // dK += dSᵀ Q, and dSᵀ to shared memory for dQ
    for (int j = 0; j < BM / 8; j++) {
      const uint32_t df[2] = {pack_half2(s[j][0], s[j][1]), pack_half2(s[j][2], s[j][3])};
      *reinterpret_cast<uint32_t*>(dss + ds_position<BM>(warp * 16 + g, j) + 2 * t) = df[0];
      *reinterpret_cast<uint32_t*>(dss + ds_position<BM>(warp * 16 + g + 8, j) + 2 * t) = df[1];
      for (int dn = 0; dn < D / 8; dn += 4) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, qs + position<D>(8 * j + (lane & 7), dn + (lane >> 3)));
        for (int i = 0; i < 4; i++) mma_m16n8k8(dk[dn + i], df, b[i]);
      }
    }
    __syncthreads();  // dSᵀ of every warp is in shared memory

    // dQ += dS K for this query tile: warp w takes 16 queries and a share of the columns
    constexpr int M_TILES = BM / 16, SHARE = 4 / M_TILES, COLS = D / 8 / SHARE;  // n-tiles per warp
    const int m0 = (warp % M_TILES) * 16, c0 = (warp / M_TILES) * COLS;
    float dq[COLS][4] = {};
    for (int kc = 0; kc < BLOCK_N / 8; kc += 2) {  // keys 8kc..8kc+15
      uint32_t a[4];  // dS (queries x keys) = dSᵀ transposed: .trans of (keys, 8 queries) blocks
      const int mat = lane >> 3;
      ldmatrix_x4_trans(a, dss + ds_position<BM>(8 * kc + (mat >> 1) * 8 + (lane & 7), m0 / 8 + (mat & 1)));
      const uint32_t af[2][2] = {{a[0], a[1]}, {a[2], a[3]}};
      for (int half = 0; half < 2; half++)
        for (int dn = 0; dn < COLS; dn += 4) {
          uint32_t b[4];  // K (keys x columns) as B: keys 8(kc + half).., columns of n-tiles c0 + dn..
          ldmatrix_x4_trans(b, ks + position<D>(8 * (kc + half) + (lane & 7), c0 + dn + (lane >> 3)));
          for (int i = 0; i < 4; i++) mma_m16n8k8(dq[dn + i], af[half], b[i]);
        }
    }
    for (int dn = 0; dn < COLS; dn++)
      for (int h = 0; h < 2; h++) {
        const int query = q0 + m0 + g + 8 * h;
        if (query >= p.n) continue;
        float* out = p.dq + head + (size_t)query * D + 8 * (c0 + dn) + 2 * t;
        atomicAdd(out, dq[dn][2 * h] * p.scale);
        atomicAdd(out + 1, dq[dn][2 * h + 1] * p.scale);
      }
  }

  for (int h = 0; h < 2; h++) {
    const int r = key + 8 * h;
    if (r >= p.n) continue;
    for (int dn = 0; dn < D / 8; dn++) {
      *reinterpret_cast<__half2*>(p.dk + head + (size_t)r * D + 8 * dn + 2 * t) =
          __floats2half2_rn(dk[dn][2 * h] * p.scale, dk[dn][2 * h + 1] * p.scale);
      *reinterpret_cast<__half2*>(p.dv + head + (size_t)r * D + 8 * dn + 2 * t) =
          __floats2half2_rn(dv[dn][2 * h], dv[dn][2 * h + 1]);
    }
  }
}

template <int D>
constexpr int smem_bytes() { return (2 * BLOCK_N * D + 2 * BLOCK_M<D> * D + BLOCK_N * BLOCK_M<D>) * 2 + 2 * BLOCK_M<D> * 4; }

std::vector<torch::Tensor> backward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor o,
                                   torch::Tensor lse, torch::Tensor dout, bool causal) {
  return launch_backward(q, k, v, o, lse, dout, causal, BLOCK_N, [](const BackwardParams& p, int d, dim3 grid) {
    if (d == 64) launch(attention_backward<64>, grid, THREADS, smem_bytes<64>(), p);
    else launch(attention_backward<128>, grid, THREADS, smem_bytes<128>(), p);
  });
}
