"""GPT-2 in the plainest PyTorch (`PlainGPT`) and its own training loop (`plain_pytorch_loop`): no
Lightning, no transformers. The speed experiment's baseline (`experiments.speed.run`), written as anyone
would write it from scratch."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


class PlainBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, w // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.ln_2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    """GPT-2 in the plainest PyTorch: nn.Linear, SDPA with `is_causal`, the head tied to the
    embedding, F.cross_entropy on float32 logits. A speed baseline, not a model of the project's:
    no transformers weights, no checkpoints."""

    def __init__(self, layers: int = 12, heads: int = 12, width: int = 768, vocab: int = 50304, seq: int = 1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(seq, width)
        self.blocks = nn.ModuleList(PlainBlock(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        for module in self.modules():  # GPT-2's initialisation, near enough for a speed test
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))


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
) -> dict:
    """`PlainGPT` trained in a loop of its own on random tokens: torch.compile, bf16 autocast on a
    GPU, fused AdamW, gradient clipping at 1.0 if `clip`: tokens/s, step time, peak memory."""
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    torch.manual_seed(0)
    model = PlainGPT(layers, heads, width, vocab, seq).to(device)
    model.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, fused=gpu)
    ids = torch.randint(0, 50257, (batch, seq + 1), device=device)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + warmup):
        if i == warmup:
            if gpu:
                torch.cuda.synchronize()
            begin = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=gpu):
            loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if gpu:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - begin) / steps
    return {
        "tokens_per_s": round(batch * seq / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
        "loss": float(loss.detach()),
    }
