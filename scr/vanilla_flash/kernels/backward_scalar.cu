// The backward pass, plain: scalar fp32 arithmetic, no tensor cores. Two kernels, so that no two threads
// ever add to the same number: one thread per key accumulates that key's dK and dV over every query that
// sees it, one thread per query accumulates its dQ over every key it sees. Each recomputes the
// probabilities P = exp(scale·q·k − lse) from the stored log-sum-exp, and dS = P (dP − D) with
// dP = dO·v and D = rowsum(dO ∘ O) (computed by PyTorch around them).
#include "common.cuh"

constexpr int ROWS = 64, TILE = 32;  // rows a block owns (one per thread), rows of the tile it walks

// dK and dV of one key per thread, walking tiles of queries (and their dO, lse, D) in shared memory
template <int D>
__global__ void __launch_bounds__(ROWS) key_gradients(const BackwardParams p) {
  __shared__ __align__(16) __half qs[TILE][D];
  __shared__ __align__(16) __half dos[TILE][D];
  __shared__ float lse_s[TILE], delta_s[TILE];
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int key = blockIdx.x * ROWS + threadIdx.x;
  const bool active = key < p.n;
  float kr[D], vr[D], dk[D], dv[D];
  for (int c = 0; c < D; c++) {
    kr[c] = active ? __half2float(p.k[head + (size_t)key * D + c]) : 0.f;
    vr[c] = active ? __half2float(p.v[head + (size_t)key * D + c]) : 0.f;
    dk[c] = dv[c] = 0.f;
  }
  const int first = p.causal ? blockIdx.x * ROWS : 0;  // earlier queries see none of this block's keys
  for (int q0 = first; q0 < p.n; q0 += TILE) {
    load_tile<TILE, D, ROWS>(p.q + head, q0, p.n, [&](int r, int c) { return &qs[r][c * 8]; });
    load_tile<TILE, D, ROWS>(p.dout + head, q0, p.n, [&](int r, int c) { return &dos[r][c * 8]; });
    for (int i = threadIdx.x; i < TILE; i += ROWS) {
      const bool inside = q0 + i < p.n;
      lse_s[i] = inside ? p.lse[(size_t)blockIdx.y * p.n + q0 + i] : INFINITY;
      delta_s[i] = inside ? p.delta[(size_t)blockIdx.y * p.n + q0 + i] : 0.f;
    }
    __syncthreads();
    for (int i = 0; i < TILE && active; i++) {
      const int query = q0 + i;
      if (query >= p.n || (p.causal && key > query)) continue;
      float s = 0.f, dp = 0.f;
      for (int c = 0; c < D; c++) {
        s += __half2float(qs[i][c]) * kr[c];
        dp += __half2float(dos[i][c]) * vr[c];
      }
      const float pr = __expf(s * p.scale - lse_s[i]), ds = pr * (dp - delta_s[i]);
      for (int c = 0; c < D; c++) {
        dv[c] += pr * __half2float(dos[i][c]);
        dk[c] += ds * __half2float(qs[i][c]);
      }
    }
    __syncthreads();
  }
  if (active)
    for (int c = 0; c < D; c++) {
      p.dk[head + (size_t)key * D + c] = __float2half(dk[c] * p.scale);
      p.dv[head + (size_t)key * D + c] = __float2half(dv[c]);
    }
}

// dQ of one query per thread, walking tiles of keys and values in shared memory
template <int D>
__global__ void __launch_bounds__(ROWS) query_gradients(const BackwardParams p) {
  __shared__ __align__(16) __half ks[TILE][D];
  __shared__ __align__(16) __half vs[TILE][D];
  const size_t head = (size_t)blockIdx.y * p.n * D;
  const int query = blockIdx.x * ROWS + threadIdx.x;
  const bool active = query < p.n;
  float qr[D], dor[D], dq[D];
  for (int c = 0; c < D; c++) {
    qr[c] = active ? __half2float(p.q[head + (size_t)query * D + c]) : 0.f;
    dor[c] = active ? __half2float(p.dout[head + (size_t)query * D + c]) : 0.f;
    dq[c] = 0.f;
  }
  const float lse = active ? p.lse[(size_t)blockIdx.y * p.n + query] : 0.f;
  const float delta = active ? p.delta[(size_t)blockIdx.y * p.n + query] : 0.f;
  const int end = p.causal ? min(p.n, (int)(blockIdx.x + 1) * ROWS) : p.n;
  for (int k0 = 0; k0 < end; k0 += TILE) {
    load_tile<TILE, D, ROWS>(p.k + head, k0, p.n, [&](int r, int c) { return &ks[r][c * 8]; });
    load_tile<TILE, D, ROWS>(p.v + head, k0, p.n, [&](int r, int c) { return &vs[r][c * 8]; });
    __syncthreads();
    for (int j = 0; j < TILE && active; j++) {
      const int key = k0 + j;
      if (key >= p.n || (p.causal && key > query)) continue;
      float s = 0.f, dp = 0.f;
      for (int c = 0; c < D; c++) {
        s += qr[c] * __half2float(ks[j][c]);
        dp += dor[c] * __half2float(vs[j][c]);
      }
      const float ds = __expf(s * p.scale - lse) * (dp - delta);
      for (int c = 0; c < D; c++) dq[c] += ds * __half2float(ks[j][c]);
    }
    __syncthreads();
  }
  if (active)
    for (int c = 0; c < D; c++) p.dq[head + (size_t)query * D + c] = dq[c] * p.scale;
}

std::vector<torch::Tensor> backward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor o,
                                   torch::Tensor lse, torch::Tensor dout, bool causal) {
  return launch_backward(q, k, v, o, lse, dout, causal, ROWS, [](const BackwardParams& p, int d, dim3 grid) {
    if (d == 64) {
      launch(key_gradients<64>, grid, ROWS, 0, p);
      launch(query_gradients<64>, grid, ROWS, 0, p);
    } else {
      launch(key_gradients<128>, grid, ROWS, 0, p);
      launch(query_gradients<128>, grid, ROWS, 0, p);
    }
  });
}
