"""GPT-2's MLP with the bias and GELU inside the matmuls: cuBLASLt's epilogues (`mlp: fused`,
vanilla model, a CUDA GPU under bf16 or fp16 mixed precision).

Under torch.compile the MLP's GELU is a kernel of its own, and so are its gradient and the first
bias's gradient in the backward pass: three passes over each layer's 3072-wide activations that do
no arithmetic to speak of (on the H200 about 7% of a training step, in the kernels
`fused_gelu_gelu_backward`, `fused_gelu_view` and `fused_gelu_gelu_backward_sum` of
results/h200/speed/speed_profile.json). cuBLASLt can do that work in the matmuls themselves:
- forward, the first matmul with the epilogue GELU_AUX_BIAS: it adds the bias, writes the GELU of
  the sum and, beside it, the sum itself (the pre-activation, kept for the backward pass);
- backward, the second matmul's input gradient with the epilogue DGELU_BGRAD: it multiplies by the
  GELU's slope at the kept pre-activation and sums the first bias's gradient on the way.
cuBLASLt's GELU is the tanh approximation that GPT-2 uses. PyTorch calls these epilogues nowhere
that keeps the pre-activation, so this module calls cuBLASLt itself, from a small C++ extension
compiled on first use (`torch.utils.cpp_extension.load_inline`; it needs the CUDA toolkit's
headers, which Colab and the GPU images have), wrapped as two PyTorch operators that
torch.compile keeps as they are. Both matmuls take their weight as `nn.Linear` stores it (out, in),
a copy of transformers' (in, out) weight, as NVIDIA's Transformer Engine calls these epilogues.

`tools/gpu/fused_mlp_check.py` checks the operators against PyTorch on a GPU and times them.
"""

from __future__ import annotations

import torch

from vanilla_flash.errors import ConfigError

# The C++ extension: two functions over row-major tensors, each one cublasLtMatmul call. cuBLASLt is
# column-major, so a row-major (rows, cols) tensor is its (cols x rows) matrix; the products below are
# written for that view.
_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <cublasLt.h>

#define LT_CHECK(expr) do { cublasStatus_t s_ = (expr); \
  TORCH_CHECK(s_ == CUBLAS_STATUS_SUCCESS, #expr " failed with cuBLAS status ", static_cast<int>(s_)); } while (0)

namespace {

constexpr size_t kWorkspace = 32 << 20;  // bytes of workspace cuBLASLt may use

template <typename T>
void set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  LT_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}

// D (m x n) = op(A) (m x k) * B (k x n), column-major, with `epilogue` on D, its bias vector (m) and
// its aux matrix (m x n, leading dimension m).
void matmul(bool transpose_a, int64_t m, int64_t n, int64_t k, const at::Tensor& a, const at::Tensor& b,
            at::Tensor& d, cublasLtEpilogue_t epilogue, void* bias, void* aux) {
  cudaDataType_t type = a.scalar_type() == at::kBFloat16 ? CUDA_R_16BF : CUDA_R_16F;
  cublasLtMatmulDesc_t desc;
  LT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = CUBLAS_OP_N;
  set(desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set(desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
  set(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux);
  set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, m);
  cublasLtMatrixLayout_t la, lb, ld;
  LT_CHECK(cublasLtMatrixLayoutCreate(&la, type, transpose_a ? k : m, transpose_a ? m : k, transpose_a ? k : m));
  LT_CHECK(cublasLtMatrixLayoutCreate(&lb, type, k, n, k));
  LT_CHECK(cublasLtMatrixLayoutCreate(&ld, type, m, n, m));
  cublasLtMatmulPreference_t preference;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  size_t workspace_bytes = kWorkspace;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &workspace_bytes, sizeof(workspace_bytes)));
  cublasLtHandle_t handle = at::cuda::getCurrentCUDABlasLtHandle();
  cublasLtMatmulHeuristicResult_t heuristic;
  int found = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, ld, ld, preference, 1, &heuristic, &found));
  TORCH_CHECK(found > 0, "cuBLASLt has no algorithm for this matmul with epilogue ", static_cast<int>(epilogue),
              " (m=", m, " n=", n, " k=", k, ")");
  at::Tensor workspace = at::empty({static_cast<int64_t>(kWorkspace)}, a.options().dtype(at::kByte));
  float alpha = 1.0f, beta = 0.0f;
  LT_CHECK(cublasLtMatmul(handle, desc, &alpha, a.data_ptr(), la, b.data_ptr(), lb, &beta, d.data_ptr(), ld,
                          d.data_ptr(), ld, &heuristic.algo, workspace.data_ptr(), kWorkspace,
                          at::cuda::getCurrentCUDAStream()));
  cublasLtMatmulPreferenceDestroy(preference);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.is_contiguous(), name, " must be a contiguous CUDA tensor");
  TORCH_CHECK(t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf, name, " must be bf16 or fp16");
}

}  // namespace

// x (rows, in), weight_t (out, in), bias (out) -> [gelu(x @ weight_t.T + bias), x @ weight_t.T + bias]
std::vector<at::Tensor> gelu_linear(const at::Tensor& x, const at::Tensor& weight_t, const at::Tensor& bias) {
  check(x, "x"); check(weight_t, "weight_t"); check(bias, "bias");
  int64_t rows = x.size(0), in = x.size(1), out = weight_t.size(0);
  TORCH_CHECK(weight_t.size(1) == in && bias.numel() == out, "gelu_linear: shapes do not fit");
  at::Tensor act = at::empty({rows, out}, x.options()), pre = at::empty({rows, out}, x.options());
  // column-major: act (out x rows) = op(A) (out x in) * x (in x rows), A = weight_t seen as (in x out), transposed
  matmul(true, out, rows, in, weight_t, x, act, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias.data_ptr(), pre.data_ptr());
  return {act, pre};
}

// grad_y (rows, out), weight2_t (out, hidden), pre (rows, hidden) ->
// [(grad_y @ weight2_t) * gelu'(pre), its column sums (the first bias's gradient)]
std::vector<at::Tensor> gelu_linear_dgrad(const at::Tensor& grad_y, const at::Tensor& weight2_t,
                                          const at::Tensor& pre) {
  check(grad_y, "grad_y"); check(weight2_t, "weight2_t"); check(pre, "pre");
  int64_t rows = grad_y.size(0), out = grad_y.size(1), hidden = pre.size(1);
  TORCH_CHECK(weight2_t.size(0) == out && weight2_t.size(1) == hidden && pre.size(0) == rows,
              "gelu_linear_dgrad: shapes do not fit");
  at::Tensor grad_pre = at::empty({rows, hidden}, pre.options()), grad_bias = at::empty({hidden}, pre.options());
  // column-major: grad_pre (hidden x rows) = A (hidden x out) * grad_y (out x rows), A = weight2_t as stored
  matmul(false, hidden, rows, out, weight2_t, grad_y, grad_pre, CUBLASLT_EPILOGUE_DGELU_BGRAD, grad_bias.data_ptr(),
         pre.data_ptr());
  return {grad_pre, grad_bias};
}
"""

_extension = None


def _compiled():
    """The C++ extension, compiled on first use (cached by PyTorch in its extensions folder)."""
    global _extension
    if _extension is None:
        from torch.utils.cpp_extension import load_inline

        _extension = load_inline(
            name="vanilla_flash_fused_mlp",
            cpp_sources=_SOURCE,
            functions=["gelu_linear", "gelu_linear_dgrad"],
            with_cuda=True,
            extra_ldflags=["-lcublasLt"],
        )
    return _extension


@torch.library.custom_op("vanilla_flash::gelu_linear", mutates_args=())
def gelu_linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(gelu(pre), pre)` with `pre = x @ weight_t.T + bias` (x: rows x in, weight_t: out x in), GELU
    the tanh approximation: one cuBLASLt matmul (epilogue GELU_AUX_BIAS)."""
    act, pre = _compiled().gelu_linear(x.contiguous(), weight_t.contiguous(), bias.contiguous())
    return act, pre


@gelu_linear.register_fake
def _(x, weight_t, bias):
    act = x.new_empty(x.shape[0], weight_t.shape[0])
    return act, torch.empty_like(act)


@torch.library.custom_op("vanilla_flash::gelu_linear_dgrad", mutates_args=())
def gelu_linear_dgrad(grad_y: torch.Tensor, weight2_t: torch.Tensor, pre: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """For `y = gelu(pre) @ weight2 + bias2` (weight2: hidden x out, `weight2_t` its (out, hidden)
    transpose, contiguous): `(grad_pre, grad_bias)` with grad_pre = (grad_y @ weight2.T) * gelu'(pre),
    grad_bias its column sums: one cuBLASLt matmul (epilogue DGELU_BGRAD)."""
    grad_pre, grad_bias = _compiled().gelu_linear_dgrad(grad_y.contiguous(), weight2_t.contiguous(), pre.contiguous())
    return grad_pre, grad_bias


@gelu_linear_dgrad.register_fake
def _(grad_y, weight2_t, pre):
    return torch.empty_like(pre), pre.new_empty(pre.shape[1])


class FusedMLP(torch.autograd.Function):
    """y = gelu(x @ w1 + b1) @ w2 + b2 (transformers' Conv1D layout: w1 in x hidden, w2 hidden x out),
    the bias and GELU in the first matmul's epilogue, their gradients in the epilogue of the matmul
    that gives the hidden activations' gradient. All tensors of one dtype (bf16 or fp16)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        act, pre = gelu_linear(x, w1.t().contiguous(), b1)
        ctx.save_for_backward(x, w1, w2, pre, act)
        return torch.addmm(b2, act, w2)

    @staticmethod
    def backward(ctx, grad_y):
        x, w1, w2, pre, act = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_pre, grad_b1 = gelu_linear_dgrad(grad_y, w2.t().contiguous(), pre)
        return grad_pre @ w1.t(), x.t() @ grad_pre, grad_b1, act.t() @ grad_y, grad_y.sum(0)


def mlp(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """GPT-2's MLP on `x` (..., in) with the fused operators, in the autocast dtype where autocast is
    on (the weights cast to it, as autocast would), else in `x`'s dtype; a clear error where cuBLASLt's
    epilogues cannot run."""
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    if device != "cuda" or dtype not in (torch.bfloat16, torch.float16):
        raise ConfigError(f"mlp: 'fused' needs a CUDA GPU and bf16 or fp16 mixed precision, not {device} in {dtype}; "
                          "use mlp: torch")  # fmt: skip
    flat = x.reshape(-1, x.shape[-1]).to(dtype)
    y = FusedMLP.apply(flat, w1.to(dtype), b1.to(dtype), w2.to(dtype), b2.to(dtype))
    return y.view(*x.shape[:-1], -1)
