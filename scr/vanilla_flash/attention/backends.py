"""The backends this package registers, one entry each: its name, what it is, its forward function in
transformers' calling convention, which mask builder feeds it, and its limits (`registry.Backend`), from
which `registry.why_not` says why it cannot run somewhere. Imported by `vanilla_flash.attention`, so that
every backend is registered before any is named."""

from vanilla_flash.attention import flash_attn as fab
from vanilla_flash.attention import from_scratch as own
from vanilla_flash.attention import registry
from vanilla_flash.attention.sdpa import eager_forward, forced_sdpa, sdpa_forward

registry.add("eager", "transformers' eager attention: matmul, softmax, matmul", eager_forward, "eager", builtin=True)
registry.add(
    "sdpa", "PyTorch scaled_dot_product_attention, kernel chosen by PyTorch", sdpa_forward, "sdpa", builtin=True
)
registry.add("sdpa_math", "PyTorch SDPA, math kernel (reference, slow)", forced_sdpa("MATH", "sdpa_math"), "sdpa")
registry.add(
    "sdpa_efficient",
    "PyTorch SDPA, memory-efficient kernel (xFormers)",
    forced_sdpa("EFFICIENT_ATTENTION", "sdpa_efficient"),
    "sdpa",
    cuda_only=True,
    min_cc=5.0,
)
registry.add(
    "sdpa_flash",
    "PyTorch SDPA, flash kernel (FlashAttention-2 inside PyTorch)",
    forced_sdpa("FLASH_ATTENTION", "sdpa_flash"),
    "sdpa",
    min_cc=8.0,
    half_only=True,
    max_head_dim=256,
)
registry.add(
    "sdpa_cudnn",
    "PyTorch SDPA, cuDNN kernel",
    forced_sdpa("CUDNN_ATTENTION", "sdpa_cudnn"),
    "sdpa",
    cuda_only=True,
    min_cc=8.0,
    half_only=True,
    max_head_dim=128,
)
registry.add(
    "flash_attn_1",
    "flash-attn 1.x (Turing and newer), variable-length API",
    fab.flash_attn_1_forward,
    "flash",
    cuda_only=True,
    min_cc=7.5,
    half_only=True,
    max_head_dim=128,
    library=1,
    turing_backward_max_head_dim=64,
)
registry.add(
    "flash_attn_2",
    "flash-attn 2.x (Ampere and newer)",
    fab.flash_attn_2_forward,
    "flash",
    cuda_only=True,
    min_cc=8.0,
    half_only=True,
    max_head_dim=256,
    library=2,
)
registry.add(
    "flash_attn_4",
    "flash-attn 4, CuTe DSL (Hopper and Blackwell)",
    fab.flash_attn_4_forward,
    "flash",
    cuda_only=True,
    min_cc=9.0,
    max_cc=10.3,
    half_only=True,
    max_head_dim=128,
    dropout=False,
    library=4,
    packed=fab.flash_attn_4_packed,
)
registry.add(
    "from_scratch",
    "the FlashAttention forward pass of notebook 05 (the kernel ladder's last rung), fp16, a T4's instructions",
    own.forward,
    "sdpa",
    cuda_only=True,
    min_cc=7.5,
    half_only=True,
    dropout=False,
    rules=own.why_not_here,
)
registry.add("auto", "the fastest backend that runs here, chosen per call", registry.auto_forward, "sdpa")
