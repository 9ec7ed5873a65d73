"""The speed experiment: the fastest GPT-2 training on one GPU, against GPT-2 in the plainest PyTorch.

    python -m experiments.speed.run --config configs/h200-speed.yaml [--set KEY=VALUE ...] --steps 40 --out OUT.json

`speed()`: the plain-PyTorch baseline (`experiments.speed.plain_gpt`), then each configuration of
`SPEED_VARIANTS` through Lightning and in the bare loop (`vanilla_flash.bench.training`), in one run. The
result file is written after each variant (a run cut short keeps what it measured), with its plot
beside it (`experiments.speed.tables.speed_plot`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from vanilla_flash.bench import timing
from vanilla_flash.bench.training import lightning_overhead
from vanilla_flash.config import TrainConfig
from vanilla_flash.models import flops, gpt2
from vanilla_flash.results import plots, provenance
from vanilla_flash.results.tables import SPEED_CLAIMS
from vanilla_flash.training import precision

from experiments.speed import tables
from experiments.speed.plain_gpt import NANOGPT_STYLE, Style, plain_pytorch_loop

# The configurations `speed` compares (the fastest GPT-2 training on one GPU): the project's compact
# model with everything that helped on the H200 (the residual stream in bf16, the loss's softmax step
# as a Triton kernel) at batch 192 (the memory the chunked loss frees allows it; 1.7% faster than 128
# on the H200), then the same with flash-attn 4 for attention (0.90 ms against cuDNN's 1.07 for a causal
# forward + backward at head dim 64, seq 1024 on the H100: results/h100/attention.json; its q, k, v packed
# as one matmul makes them since commit c23392d, results/h200/speed/probe-run/packed_check.json), then that
# with the weights in bf16 (precision bf16-true: pure bf16 training, as the plain rows with bf16 weights
# train; another training, so its own claim against them), and that at batch 240 (the chunked loss leaves the
# memory for it on an 80 GB card: 59.6 GiB at 192 on the H100, results/h100/speed/first-strong-baseline-run/,
# about 0.31 GiB a sequence more; the plain GPT-2 in bf16 took 75.3 GiB at 192), and the one at 192 with its
# loss read every 25 steps instead of 5 (each reading waits for the GPU, in both loops; the plain loop never
# reads its loss): what those waits still cost once Lightning no longer waits after every step (it did, for the
# loss on its progress bar, until commit 13ca9cf: results/h100/speed/step-gaps-run/); each through Lightning
# and in the bare loop, back to back. On the H100 (results/h100/speed/lightning-fix-run/) batch 240 was the
# fastest, and reading the loss every 25 steps gained less than 0.5%: the best keeps reading it every 5 steps,
# as a run does.
# What did not help, or did not need measuring again, is in the earlier runs' files
# (results/h200/README.md, results/h100/README.md): float8 matmuls (torchao's tensorwise recipe, 479.8k
# against 547.1k tokens/s through Lightning, results/h100/speed.json at commit e979544), CUDA graphs,
# max-autotune, the MLP's bias + GELU as Triton kernels (run 5, commit dd9fe42) or in cuBLASLt's epilogues
# (speed/fused-mlp-run/, commit a3338a2), the full float32 loss, batches 32 and 64, transformers' GPT-2
# (its loss curve matched the vanilla model's in every run up to commit e41fb11).
_BEST = {"model_impl": "vanilla", "loss": "chunked_triton", "residual": "bf16", "batch_size": 192}
_FA4 = {**_BEST, "attn": "flash_attn_4"}


SPEED_VARIANTS: tuple[tuple[str, dict], ...] = (
    ("vanilla, chunked loss with Triton kernel, batch 192, bf16 residual", _BEST),
    ("vanilla, chunked loss with Triton kernel, batch 192, bf16 residual, flash-attn 4", _FA4),
    ("vanilla, chunked loss with Triton kernel, batch 192, bf16 residual, flash-attn 4, bf16 weights",
     {**_FA4, "precision": "bf16-true"}),
    ("vanilla, chunked loss with Triton kernel, batch 240, bf16 residual, flash-attn 4, bf16 weights",
     {**_FA4, "precision": "bf16-true", "batch_size": 240}),
    ("vanilla, chunked loss with Triton kernel, batch 192, bf16 residual, flash-attn 4, bf16 weights, "
     "loss read every 25 steps", {**_FA4, "precision": "bf16-true", "log_every": 25}),
)  # fmt: skip


def speed(
    base: TrainConfig,
    variants=SPEED_VARIANTS,
    steps: int = 40,
    warmup: int = 10,
    log: Callable[[str], None] = print,
    after_each: Callable[[dict], None] | None = None,
    plain_batches: tuple[int, ...] = (128, 192),
    plain_styles=None,
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
    result["plain_pytorch"] = plain_rows = _plain_baseline(base, plain_batches, steps, warmup, log, plain_styles)
    for i, (name, overrides) in enumerate(variants):
        # each variant compiled afresh: else torch.compile carries one variant's state into the next
        # (a batch size seen to change turns dynamic; after 8 models' recompiles it runs uncompiled)
        torch._dynamo.reset()
        # a run folder per variant, started afresh: one variant's last checkpoint is not another's
        cfg = dataclasses.replace(base, **overrides, run_dir=f"{base.run_dir}/speed-{i}")
        row = {
            "name": name,
            "model_impl": cfg.model_impl,
            "loss": cfg.loss,
            "residual": cfg.residual,
            "float8": cfg.float8,
            "precision": cfg.precision,
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
    clip = bool(base.grad_clip)  # against the plain rows that clip as the project's runs do
    for key, weights in SPEED_CLAIMS:
        against = _best_over_plain(rows, plain_rows, clip, weights)
        if against:
            result[key] = against
            log(f"best through Lightning, {weights} weights ({against['best']}) / fastest plain PyTorch (batch "
                f"{against['plain_batch']}, clip {clip}): {against['ratio']:.3f}")  # fmt: skip
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


def _best_over_plain(rows: list[dict], plain_rows: list[dict], clip: bool, weights: str) -> dict | None:
    """The fastest row through Lightning whose weights are `weights` ("float32": mixed precision;
    "bfloat16": bf16-true) against the fastest plain GPT-2 row with the same weights and clipping; beside
    it, against the plain row written as nanoGPT writes it with those weights (another model: shown, not
    claimed)."""
    ours = [r for r in rows if r.get("lightning_tokens_per_s") and _weights(r["precision"]) == weights]
    theirs = [r for r in plain_rows if r["status"] == "ok" and r.get("weights", "float32") == weights]
    best = max(ours, key=lambda r: r["lightning_tokens_per_s"], default=None)
    plain = max((r for r in theirs if r["grad_clip"] == clip and r["style"] == "gpt2"),
                key=lambda r: r["tokens_per_s"], default=None)  # fmt: skip
    if not (best and plain):
        return None
    ratio = best["lightning_tokens_per_s"] / plain["tokens_per_s"]
    against = {"best": best["name"], "plain_batch": plain["batch"], "grad_clip": clip, "ratio": round(ratio, 4)}
    nanogpt = max((r for r in theirs if r["style"] == "nanogpt"), key=lambda r: r["tokens_per_s"], default=None)
    if nanogpt:
        against["over_nanogpt_style"] = round(best["lightning_tokens_per_s"] / nanogpt["tokens_per_s"], 4)
    return against


def _weights(prec: str) -> str:
    """The dtype a row's precision holds the weights in, named as the plain rows name theirs (`Style.weights`)."""
    return str(precision.weights_dtype(prec)).removeprefix("torch.")


# The plain baseline's ways of writing GPT-2 (`_plain_baseline`): name, style, the clippings it runs with.
# GPT-2 as written, clipping at 1.0 as the project's runs do and without; as nanoGPT writes it (no biases,
# exact GELU: another model than GPT-2, a reference row), without; then both with the weights held in bf16
# (pure bf16 training: 4.7% faster on an H200, results/h200/speed/probe-run/plain_probe.json), which a
# bf16-true variant is claimed against.
PLAIN_STYLES: tuple[tuple[str, Style, tuple[bool, ...]], ...] = (
    ("gpt2", Style(), (True, False)),
    ("nanogpt", NANOGPT_STYLE, (False,)),
    ("gpt2", Style(weights="bfloat16"), (True, False)),
    ("nanogpt", dataclasses.replace(NANOGPT_STYLE, weights="bfloat16"), (False,)),
)

# The CUDA allocator's setting for the whole run, every row alike. The H100 run at commit ab05d4c, without it,
# timed the bf16-weights variant's bare loop at 499.4k tokens/s after 565.0k in the run before, right after
# its Lightning run near the card's memory; each row now records the allocator's retries (stalls for memory).
ALLOCATOR = "expandable_segments:True"


def use_allocator() -> str | None:
    """Hold this process's CUDA memory as `ALLOCATOR` says (segments that grow: no row slowed by blocks cut
    to an earlier row's sizes); the setting, None without a GPU."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.memory._set_allocator_settings(ALLOCATOR)
    return ALLOCATOR


# the SDPA kernel of the project's attention backends, for the plain model to use the same one
SDPA_KERNELS = {
    "sdpa_cudnn": "CUDNN_ATTENTION",
    "sdpa_flash": "FLASH_ATTENTION",
    "sdpa_efficient": "EFFICIENT_ATTENTION",
}


def _plain_baseline(
    base: TrainConfig, batches, steps: int, warmup: int, log: Callable[[str], None], styles=None
) -> list[dict]:
    """`plain_pytorch_loop` with `base`'s model sizes, sequence length, compile mode and SDPA kernel
    (`SDPA_KERNELS`; PyTorch's choice for a backend that is not an SDPA kernel) and the project's padded
    vocabulary, in each way of `styles` (default `PLAIN_STYLES`) at each of `batches` from the smallest, each
    way at its own best batch: a way stops at the first batch that fails, recorded (on an 80 GB H100, batch
    192 ran out of memory with float32 weights and fit with bf16 ones, results/h100/speed.json)."""
    layers, heads, width, _ = base.dims
    kernel = SDPA_KERNELS.get(base.attn)
    rows = []
    for style_name, style, clips in PLAIN_STYLES if styles is None else styles:
        for batch in sorted(batches):
            for clip in clips:
                torch._dynamo.reset()
                row = {"batch": batch, "seq": base.seq_len, "grad_clip": clip, "sdpa_kernel": kernel,
                       "vocab": gpt2.padded_vocab(gpt2.GPT2_VOCAB), "compile_mode": base.compile_mode,
                       "style": style_name, **vars(style), "status": "ok"}  # fmt: skip
                name = f"plain PyTorch GPT-2 ({style_name}, {style.weights} weights), batch {batch}, clip {clip}"
                try:
                    row.update(plain_pytorch_loop(batch, base.seq_len, clip, row["vocab"], steps, warmup, layers,
                                                  heads, width, kernel, base.compile_mode, style))  # fmt: skip
                    log(f"{name}: {row['tokens_per_s'] / 1e3:.1f}k tok/s")
                except Exception as err:
                    row["status"] = timing.failure_status(err)
                    log(f"{name}: {row['status']}")
                timing.free_memory()
                rows.append(row)
                if row["status"] != "ok":
                    break
            if rows[-1]["status"] != "ok":
                break
    return rows


def _picked(positions: str | None, options: tuple) -> tuple:
    """The `options` that `positions` names ("1,2": by position from 0): all of them for None, none for ''."""
    return options if positions is None else tuple(options[int(i)] for i in positions.split(",") if i)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training parameters (YAML), e.g. configs/h200-speed.yaml")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override parameters")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument(
        "--plain-batches",
        default="128,192",
        help="the plain baseline's batches: each way of writing it from the smallest until one fails",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="which of SPEED_VARIANTS to run, by position from 0, e.g. 1,2 (default: all; '': none)",
    )
    parser.add_argument(
        "--plain-styles",
        default=None,
        help="which of PLAIN_STYLES to run, by position from 0, e.g. 2 (default: all; '': none)",
    )
    parser.add_argument("--out", required=True, help="the result file (JSON); its plot goes beside it (.png)")
    args = parser.parse_args(argv)
    overrides = {}
    for pair in args.set:
        key, _, value = pair.partition("=")
        overrides[key] = yaml.safe_load(value)
    cfg = TrainConfig.from_yaml(args.config, **overrides)
    result = {"kind": "speed", **provenance.provenance()}
    if allocator := use_allocator():
        result["cuda_allocator"] = allocator
    result.update(
        speed(
            cfg,
            steps=args.steps,
            after_each=lambda part: provenance.write_json(args.out, {**result, **part}),
            plain_batches=tuple(int(b) for b in args.plain_batches.split(",")),
            plain_styles=_picked(args.plain_styles, PLAIN_STYLES),
            variants=_picked(args.variants, SPEED_VARIANTS),
        )
    )
    provenance.write_json(args.out, result)
    claims = any(key in result for key, _ in SPEED_CLAIMS)  # else the goal in tokens/s
    plot = tables.speed_plot(result, Path(args.out).with_suffix(".png"), against_plain=claims)
    print(f"wrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
