"""The fastest GPT-2 training on one GPU, against GPT-2 in the plainest PyTorch.

- `plain_pytorch_loop()`: GPT-2 in the plainest PyTorch (`PlainGPT`) in a loop of its own, no
  Lightning, no transformers: what `speed()` measures the project's best run against.
- `speed()`: the plain-PyTorch baseline, then each configuration of `SPEED_VARIANTS` through
  Lightning and in the bare loop (`bench.training`), in one run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vanilla_flash.bench import timing
from vanilla_flash.bench.training import lightning_overhead
from vanilla_flash.config import TrainConfig
from vanilla_flash.models import flops, gpt2
from vanilla_flash.results import plots


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


# The configurations `speed` compares (the fastest GPT-2 training on one GPU): the project's compact
# model with everything that helped on the H200 (the residual stream in bf16, the loss's softmax step
# as a Triton kernel) at batch 128 and at 192 (the memory the chunked loss frees allows both), then
# transformers' GPT-2 at batch 128, whose loss curve the batch-128 row is compared with; each through
# Lightning and in the bare loop, back to back. What did not help, or did not need measuring again, is
# in the earlier runs' files (results/h200/README.md): CUDA graphs, max-autotune, the MLP's bias + GELU
# as Triton kernels (run 5, commit dd9fe42) or in cuBLASLt's epilogues (speed/fused-mlp-run/, commit
# a3338a2), the full float32 loss, batches 32 and 64, transformers' GPT-2 run twice.
_BEST = {"model_impl": "vanilla", "loss": "chunked_triton", "residual": "bf16", "batch_size": 128}


SPEED_VARIANTS: tuple[tuple[str, dict], ...] = (
    ("vanilla, chunked loss with Triton kernel, batch 128, bf16 residual", _BEST),
    ("vanilla, chunked loss with Triton kernel, batch 192, bf16 residual", {**_BEST, "batch_size": 192}),
    ("hf, batch 128", {"model_impl": "hf", "loss": "full", "batch_size": 128}),
)


def speed(
    base: TrainConfig,
    variants=SPEED_VARIANTS,
    steps: int = 40,
    warmup: int = 10,
    log: Callable[[str], None] = print,
    after_each: Callable[[dict], None] | None = None,
    plain_batches: tuple[int, ...] = (128,),
) -> dict:
    """`plain_pytorch_loop` at each of `plain_batches` (`plain_pytorch`), then each of `variants`
    (overrides of `base`) through Lightning and in the bare loop (`lightning_overhead`), and the best
    Lightning row against the fastest plain one (`best_over_plain`), with MFU against a
    bf16 matmul measured in the same run, before and after; a variant that fails is recorded with
    its error and the rest run. Every Lightning run
    starts from the same weights (same seed; `models.vanilla.build` takes transformers' initialisation)
    on the same data, so each row's `loss_curve` is compared with the hf row's of the same batch
    (`max_loss_diff_vs_hf`, `mean_loss_diff_vs_hf`). `after_each` gets the result so far after each variant."""
    before = timing.matmul_tflops()
    result = {"matmul_tflops": {"before": before, "after": None}, "rows": []}
    rows = result["rows"]
    # the baseline first: the variants' last one compiles for minutes, and a run cut short keeps it
    result["plain_pytorch"] = plain_rows = _plain_baseline(base, plain_batches, steps, warmup, log)
    for i, (name, overrides) in enumerate(variants):
        # each variant compiled afresh: else torch.compile carries one variant's state into the next
        # (a batch size seen to change turns dynamic; after 8 models' recompiles it runs uncompiled)
        torch._dynamo.reset()
        # a run folder per variant, started afresh: one variant's last checkpoint is not another's
        cfg = dataclasses.replace(base, **overrides, run_dir=f"{base.run_dir}/speed-{i}", resume="never")
        row = {
            "name": name,
            "model_impl": cfg.model_impl,
            "loss": cfg.loss,
            "residual": cfg.residual,
            "attn": cfg.attn,
            "batch": cfg.batch_size,
            "seq_len": cfg.seq_len,
            "compile_mode": cfg.compile_mode if cfg.compile else None,
            "status": "ok",
        }
        rows.append(row)
        try:
            row.update(lightning_overhead(cfg, steps=steps, warmup=warmup))
        except Exception as err:
            row["status"] = timing.failure_status(err)
            log(f"{name}: {row['status']}")
        else:
            history = plots.read_metrics(f"{cfg.run_dir}/logs")
            row["loss_curve"] = [[r["step"], round(r["train/loss"], 5)] for r in history if r.get("train/loss")]
            with torch.device("meta"):  # the FLOPs per token of this model, without allocating it
                shape = gpt2.build(cfg.model_size, seq_len=cfg.seq_len, **cfg.model_dims)
            per_token = flops.model_flops_per_token(shape, cfg.seq_len)
            row["model_tflops"] = round(row["lightning_tokens_per_s"] * per_token / 1e12, 4)
            log(
                f"{name}: Lightning {row['lightning_tokens_per_s'] / 1e3:.1f}k tok/s, "
                f"bare {row['bare_tokens_per_s'] / 1e3:.1f}k (Lightning / bare {row['lightning_over_bare']:.3f}), "
                f"{row['model_tflops']} model TFLOP/s, peak {row['peak_mem_gib']} GiB"
            )
        timing.free_memory()
        if after_each:
            after_each(result)
    measured = [r for r in rows if r.get("lightning_tokens_per_s")]
    best = max(measured, key=lambda r: r["lightning_tokens_per_s"], default=None)
    plain = max((r for r in plain_rows if r["status"] == "ok"), key=lambda r: r["tokens_per_s"], default=None)
    if best and plain:
        ratio = best["lightning_tokens_per_s"] / plain["tokens_per_s"]
        result["best_over_plain"] = {"best": best["name"], "plain_batch": plain["batch"], "ratio": round(ratio, 4)}
        log(f"best through Lightning ({best['name']}) / fastest plain PyTorch (batch {plain['batch']}): {ratio:.3f}")
        if after_each:
            after_each(result)
    result["matmul_tflops"]["after"] = after = timing.matmul_tflops()
    for row in rows:
        if before and row.get("model_tflops"):
            row["mfu_vs_matmul"] = round(row["model_tflops"] / max(before, after), 4)
        hf = next(
            (r for r in rows if r["model_impl"] == "hf" and r.get("loss_curve") and r["batch"] == row["batch"]), None
        )
        if hf and row is not hf and row.get("loss_curve"):
            theirs = dict(hf["loss_curve"])
            diffs = [abs(loss - theirs[step]) for step, loss in row["loss_curve"] if step in theirs]
            row["max_loss_diff_vs_hf"] = round(max(diffs), 5) if diffs else None
            row["mean_loss_diff_vs_hf"] = round(sum(diffs) / len(diffs), 5) if diffs else None
    return result


def _plain_baseline(base: TrainConfig, batches, steps: int, warmup: int, log: Callable[[str], None]) -> list[dict]:
    """`plain_pytorch_loop` at each of `batches`, with `base`'s model sizes, sequence length and
    gradient clipping, and the project's padded vocabulary; a batch that fails is recorded."""
    layers, heads, width, _ = base.dims
    rows = []
    for batch in batches:
        torch._dynamo.reset()
        row = {
            "batch": batch,
            "seq": base.seq_len,
            "grad_clip": bool(base.grad_clip),
            "vocab": gpt2.padded_vocab(gpt2.GPT2_VOCAB),
            "status": "ok",
        }
        try:
            row.update(
                plain_pytorch_loop(
                    batch, base.seq_len, bool(base.grad_clip), row["vocab"], steps, warmup, layers, heads, width
                )
            )
            log(f"plain PyTorch GPT-2, batch {batch}: {row['tokens_per_s'] / 1e3:.1f}k tok/s (bare)")
        except Exception as err:
            row["status"] = timing.failure_status(err)
            log(f"plain PyTorch GPT-2, batch {batch}: {row['status']}")
        timing.free_memory()
        rows.append(row)
    return rows
