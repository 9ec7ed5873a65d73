"""What training costs: GPT-2 training benchmarks, in a bare PyTorch loop and through Lightning.

- `bare_loop()`: a plain PyTorch training loop on the same model, optimizer, schedule and
  precision as `train.GPT2Module`: tokens/s, step time, MFU, peak memory.
- `train_grid()`: that loop per attention backend and sequence length, same tokens per step.
- `impl_grid()`: Hugging Face GPT-2 against flash-attn's own GPT (its fused parts off and on).
- `lightning_overhead()`: the Lightning trainer against the bare loop on the same model, data,
  backend and precision, in one run.
The speed experiment (the fastest GPT-2 training against a plain-PyTorch one) is `experiments.speed.run`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import timing
from vanilla_flash.config import TrainConfig
from vanilla_flash.models import flops
from vanilla_flash.models.gpt2 import GPT2_VOCAB
from vanilla_flash.training import datamodule, precision
from vanilla_flash.training import run as train
from vanilla_flash.training.callbacks import StepTimer


def _batches(cfg, steps: int, device: str):
    """Random token blocks for `steps` steps (kernel speed does not depend on the text)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        yield torch.randint(0, GPT2_VOCAB, (cfg.batch_size, cfg.seq_len), generator=gen).to(device, non_blocking=True)


def bare_loop(
    cfg: TrainConfig,
    steps: int = 30,
    warmup: int = 10,
    data_loader=None,
    run_precision: str | None = None,
    after_step: Callable[[], None] | None = None,
    vocab_size: int = GPT2_VOCAB,
) -> dict:
    """A plain PyTorch training loop on the same model, optimizer, schedule and precision as
    `train.GPT2Module`: what Lightning is compared against. `run_precision` is the Lightning precision
    to run in (default: the run's, as `precision.policy` gives it); `after_step` is called
    after every step (a profiler's `step`); `vocab_size`: the tokenizer's, as `data_loader`'s data module
    gives it (default GPT-2's, which the random tokens without a loader are drawn from). `loss_curve`:
    [step, loss] every `cfg.log_every` steps, warm-up steps included, numbered from 0 as Lightning logs them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = env.probe()
    prec = run_precision or precision.policy(machine, cfg.precision)
    torch.manual_seed(cfg.seed)
    module = train.GPT2Module(cfg, vocab_size=vocab_size).to(device, precision.weights_dtype(prec))  # as Lightning does
    module.configure_model()
    opt_cfg = module.make_optimizer(prec)
    optimizer, schedule = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    scaler = torch.amp.GradScaler(device, enabled=prec == "16-mixed")
    batches = _endless(data_loader) if data_loader is not None else _batches(cfg, steps + warmup, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    curve = []
    retries = timing.alloc_retries()
    for i in range(steps + warmup):
        if i == warmup:  # the clock runs over the timed steps as a whole, as a real loop runs them
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        for _ in range(cfg.accumulate):
            ids = next(batches).to(device, non_blocking=True)
            with precision.autocast(prec, device):
                loss = module(ids) / cfg.accumulate
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        if (i + 1) % cfg.log_every == 0:  # a loop that watches its loss reads it every few steps, as Lightning logs it
            curve.append([i, round(loss.item() * cfg.accumulate, 5)])
        if after_step:
            after_step()
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    tokens_s = cfg.batch_size * cfg.seq_len * cfg.accumulate / step_s
    mfu = flops.mfu(tokens_s, module.flops_per_token, machine.gpu_name)
    return {
        "tokens_per_s": round(tokens_s, 1),
        "step_ms": round(step_s * 1e3, 2),
        "mfu": round(mfu, 4) if mfu is not None else None,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "loss": float(loss.detach()) * cfg.accumulate,
        "loss_curve": curve,
        "alloc_retries": timing.alloc_retries_since(retries),
    }


# not in the training grid by default: PyTorch's own choice and `auto` (each runs one of the others) and SDPA's
# math kernel (a slow reference)
NOT_TIMED = ("sdpa", "sdpa_math", "auto")


def train_grid(
    size: str = "124M",
    backends=None,
    seq_lens=(1024, 2048, 4096, 8192),
    tokens_per_step: int = 16384,
    steps: int = 15,
    compile: bool = False,
    dtype: str | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """GPT-2 `size` training steps per backend and sequence length, same tokens per step, under
    mixed precision in `dtype` (default: the machine's; float16 for the T4 set, also on a newer GPU).
    `backends`: default, every registered backend but `NOT_TIMED`, in the registry's order."""
    backends = backends or [name for name in attention.names() if name not in NOT_TIMED]
    machine = env.probe()
    prec = precision.PRECISION_OF.get(dtype) or precision.policy(machine)
    dtype = precision.compute_dtype(prec)
    rows = []
    for seq in seq_lens:
        for name in backends:
            row = {
                "backend": name,
                "size": size,
                "seq": seq,
                "batch": max(1, tokens_per_step // seq),
                "precision": prec,
                "compile": compile,
                "status": "ok",
            }
            rows.append(row)
            head_dim = 64
            reason = attention.why_not(name, machine, dtype=dtype, head_dim=head_dim)
            if reason:
                row["status"] = f"skip: {reason}"
                continue
            cfg = TrainConfig(
                model_size=size,
                seq_len=seq,
                batch_size=row["batch"],
                attn=name,
                compile=compile,
                precision=prec,
                warmup_steps=2,
                max_steps=1000,
            )
            try:
                row.update(bare_loop(cfg, steps=steps, warmup=5 if not compile else 8))
            except Exception as err:
                timing.free_memory()
                row["status"] = timing.failure_status(err)
            timing.free_memory()
            log(_train_line(row))
    return rows


def impl_grid(
    size: str = "124M",
    variants: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("hf", "flash_attn_1", ()),
        ("hf", "sdpa_cudnn", ()),
        ("flash_attn", "-", ()),
        ("flash_attn", "-", ("fused_bias_fc", "fused_mlp", "fused_xentropy")),
        ("flash_attn", "-", ("fused_bias_fc", "fused_mlp", "fused_dropout_add_ln", "fused_xentropy")),
    ),
    seq_len: int = 1024,
    batch: int = 16,
    steps: int = 20,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Hugging Face GPT-2 against flash-attn's own GPT (fused parts off and on), same size, data
    shape and precision: tokens/s and peak memory. A variant that cannot run here is recorded."""
    rows = []
    for impl, attn, fused in variants:
        row = {
            "model_impl": impl,
            "attn": attn,
            "fused": list(fused),
            "size": size,
            "seq": seq_len,
            "batch": batch,
            "status": "ok",
        }
        rows.append(row)
        cfg = TrainConfig(
            model_size=size,
            seq_len=seq_len,
            batch_size=batch,
            model_impl=impl,
            fused=list(fused),
            attn=attn if impl == "hf" else "auto",
            warmup_steps=2,
            max_steps=1000,
        )
        try:
            row.update(bare_loop(cfg, steps=steps, warmup=5))
        except Exception as err:
            timing.free_memory()
            row["status"] = timing.failure_status(err)
        timing.free_memory()
        log(
            f"{impl:<10} {attn:<13} fused {','.join(fused) or '-':<60} "
            + (
                f"{row['tokens_per_s'] / 1e3:7.1f}k tok/s  peak {row['peak_mem_gib']} GiB"
                if row["status"] == "ok"
                else row["status"][:100]
            )
        )
    return rows


def _train_line(r: dict) -> str:
    if r["status"] != "ok":
        return f"seq {r['seq']:>5} {r['backend']:<15} {r['status'][:90]}"
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
    peak = f"{r['peak_mem_gib']:.1f} GiB" if r.get("peak_mem_gib") else "-"  # MFU and memory: GPU only
    return (
        f"seq {r['seq']:>5} {r['backend']:<15} {r['tokens_per_s'] / 1e3:8.1f}k tok/s  step {r['step_ms']:8.1f} ms"
        f"  MFU {mfu:>6}  peak {peak:>9}"
    )


def lightning_overhead(
    cfg: TrainConfig,
    steps: int = 40,
    warmup: int = 10,
    callbacks: tuple = (),
    after_step: Callable[[], None] | None = None,
) -> dict:
    """tokens/s of `train.train(cfg)` (the Lightning trainer, with logging and the progress bar)
    and of `bare_loop` on the same model, data, backend and precision; and their ratio. `callbacks` join
    the Lightning run's, `after_step` is the bare loop's (a profiler's, say). The run starts from step 0
    (`resume: never`): an earlier run's files in its folder are moved aside, not resumed."""
    run_cfg = dataclasses.replace(
        cfg, max_steps=steps + warmup, val_every=10**6, ckpt_every=10**6, sample_every=0, sample_tokens=1,
        resume="never",
    )  # fmt: skip
    timer = StepTimer(warmup)
    retries = timing.alloc_retries()
    summary = train.train(run_cfg, callbacks=[timer, *callbacks])
    lightning_step = timer.step_seconds
    lightning_retries = timing.alloc_retries_since(retries)
    del timer, callbacks  # Lightning hands each callback the module's `log`: the last references to its model
    timing.free_memory()  # the bare loop starts on a whole card, as the Lightning run did
    tokens = cfg.batch_size * cfg.seq_len * cfg.accumulate
    dm = datamodule.WikisourceData(run_cfg)
    dm.setup("fit")
    bare = bare_loop(run_cfg, steps=steps, warmup=warmup, data_loader=dm.train_dataloader(),
                     after_step=after_step, vocab_size=dm.stats["vocab_size"])  # fmt: skip
    lightning_tps = tokens / lightning_step
    return {
        "attention": summary.get("attention"),
        "precision": summary.get("precision"),
        "compile": cfg.compile,
        "compile_mode": cfg.compile_mode if cfg.compile else None,
        "batch": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "lightning_tokens_per_s": round(lightning_tps, 1),
        "bare_tokens_per_s": bare["tokens_per_s"],
        "lightning_over_bare": round(lightning_tps / bare["tokens_per_s"], 4),
        "lightning_alloc_retries": lightning_retries,
        "bare_alloc_retries": bare["alloc_retries"],
        "bare_mfu": bare["mfu"],
        "peak_mem_gib": bare["peak_mem_gib"],
    }


def _endless(loader):
    """`loader`'s batches, read again from its start whenever it ends."""
    while True:
        yield from loader
