"""GPT-2 in plain PyTorch (`PlainGPT`) and its own training loop (`plain_pytorch_loop`): no Lightning, no
transformers. The speed experiment's baseline (`experiments.speed.run`), written as anyone would write it
from scratch and made as fast as plain PyTorch goes: SDPA on the GPU's fastest kernel (cuDNN's on Hopper,
which PyTorch's own order puts after FlashAttention-2), inputs and targets as a data loader hands them
(contiguous, not views of one tensor), torch.compile, fused AdamW, and gradient clipping on or off."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from vanilla_flash.bench import timing

from experiments.speed import kernel_times


@dataclasses.dataclass(frozen=True)
class Style:
    """How the plain GPT-2 is written, where a plain GPT-2 may be written otherwise (`plain_probe.py` measures
    each): biases in the Linear and LayerNorm layers (GPT-2 has them; nanoGPT trains without by default),
    GELU's tanh approximation (GPT-2's) or the exact one (nanoGPT's), the logits cast to float32 before the
    loss or left to autocast; and the weights kept in float32 under bf16 autocast (mixed precision, as the
    project trains) or held in bfloat16 themselves (pure bf16 training: other numerics, a diagnostic only)."""

    bias: bool = True
    gelu: str = "tanh"
    float_logits: bool = True
    weights: str = "float32"


# the model as nanoGPT writes it for training (its defaults): no biases, exact GELU, logits left to autocast
NANOGPT_STYLE = Style(bias=False, gelu="exact", float_logits=False)


class PlainBlock(nn.Module):
    def __init__(self, width: int, heads: int, kernel: SDPBackend | None = None, style: Style = Style()):
        super().__init__()
        self.heads, self.kernel, self.gelu = heads, kernel, style.gelu
        bias = style.bias
        self.ln_1, self.ln_2 = nn.LayerNorm(width, bias=bias), nn.LayerNorm(width, bias=bias)
        self.qkv, self.out = nn.Linear(width, 3 * width, bias=bias), nn.Linear(width, width, bias=bias)
        self.up, self.down = nn.Linear(width, 4 * width, bias=bias), nn.Linear(4 * width, width, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, w // self.heads).unbind(2)
        with sdpa_kernel(self.kernel) if self.kernel is not None else contextlib.nullcontext():
            y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.ln_2(x)), approximate="tanh" if self.gelu == "tanh" else "none"))


class PlainGPT(nn.Module):
    """GPT-2 in plain PyTorch: nn.Linear, SDPA with `is_causal` (on `kernel` if named, else PyTorch's
    choice), the head tied to the embedding, F.cross_entropy on float32 logits. A speed baseline, not a
    model of the project's: no transformers weights, no checkpoints. `style` writes it otherwise (`Style`)."""

    def __init__(
        self,
        layers: int = 12,
        heads: int = 12,
        width: int = 768,
        vocab: int = 50304,
        seq: int = 1024,
        kernel: SDPBackend | None = None,
        style: Style = Style(),
    ):
        super().__init__()
        self.float_logits = style.float_logits
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(seq, width)
        self.blocks = nn.ModuleList(PlainBlock(width, heads, kernel, style) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, bias=style.bias)
        for module in self.modules():  # GPT-2's initialisation, near enough for a speed test
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = (self.ln_f(x) @ self.wte.weight.t()).view(-1, self.wte.weight.shape[0])
        return F.cross_entropy(logits.float() if self.float_logits else logits, targets.reshape(-1))


def plain_pytorch_loop(
    batch: int,
    seq: int = 1024,
    clip: bool = True,
    vocab: int = 50304,
    steps: int = 20,
    warmup: int = 8,
    layers: int = 12,
    heads: int = 12,
    width: int = 768,
    kernel: str | None = None,
    compile_mode: str = "default",
    style: Style = Style(),
    profile_steps: int = 0,
) -> dict:
    """`PlainGPT` trained in a loop of its own on random tokens: SDPA's `kernel` (an `SDPBackend` name such
    as "CUDNN_ATTENTION"; None: PyTorch's choice), torch.compile in `compile_mode`, bf16 autocast on a GPU
    (TF32 for what stays in float32), fused AdamW, gradient clipping at 1.0 if `clip`; inputs and targets
    contiguous, as a data loader gives them (`style`: see `Style`): tokens/s, step time, peak memory; with
    `profile_steps`, that many steps more under the profiler, after the timed ones (`kernel_times.per_step`)."""
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    sdpa = getattr(SDPBackend, kernel) if kernel else None
    model = PlainGPT(layers, heads, width, vocab, seq, sdpa, style).to(device, getattr(torch, style.weights))
    model.compile(mode=compile_mode)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, fused=gpu)
    ids = torch.randint(0, min(vocab, 50257), (batch, seq + 1), device=device)  # GPT-2's tokens
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def step() -> torch.Tensor:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=gpu):
            loss = model(inputs, targets)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    if gpu:
        torch.cuda.reset_peak_memory_stats()
    retries = timing.alloc_retries()
    for i in range(steps + warmup):
        if i == warmup:
            if gpu:
                torch.cuda.synchronize()
            begin = time.perf_counter()
        loss = step()
    if gpu:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - begin) / steps
    result = {
        "tokens_per_s": round(batch * seq / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
        "loss": float(loss.detach()),
        "alloc_retries": timing.alloc_retries_since(retries),
    }
    if profile_steps:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA if gpu else ProfilerActivity.CPU]) as prof:
            for _ in range(profile_steps):
                step()
            if gpu:
                torch.cuda.synchronize()
        result.update(kernel_times.per_step(prof, profile_steps, gpu, top=15))
    return result
