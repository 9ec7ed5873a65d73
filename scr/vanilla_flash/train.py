"""Train GPT-2 on Wikisource with PyTorch Lightning: the module, the run and its checkpoints.

`train(cfg)` wires the pieces: `data.WikisourceData` (documents, tokenizer, packed blocks in a
resumable order), `GPT2Module` (the model with the chosen attention backend and its optimizer),
the callbacks of `vanilla_flash.callbacks`, checkpoints every `ckpt_every` steps and `last.ckpt`
(resumed automatically: `find_resume`, checked by `inspect_checkpoint`), and at the end a summary
(`run_dir/summary.json`) and the loss curve (`run_dir/loss.png`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from vanilla_flash import attention, data, env, flops, machine_report, plots, precision
from vanilla_flash import model as gpt2
from vanilla_flash.callbacks import Samples, Throughput
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError

log = logging.getLogger(__name__)


class GPT2Module(L.LightningModule):
    """GPT-2 (`model_impl`: transformers' or flash-attn's) with the run's attention backend; AdamW
    with weight-decay groups, linear warm-up then cosine learning rate, gradient clipping."""

    def __init__(self, cfg: dict, vocab_size: int, tokenizer_fingerprint: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig.from_dict(cfg)
        common = dict(vocab_size=vocab_size, seq_len=self.cfg.seq_len, dropout=self.cfg.dropout)
        if self.cfg.model_impl == "flash_attn":
            from vanilla_flash import fa_gpt

            self.net = fa_gpt.build(self.cfg.model_size, fused=self.cfg.fused, **common)
        elif self.cfg.model_impl == "hf":
            self.net = gpt2.build(self.cfg.model_size, attn=self.cfg.attn, **common)
        else:
            raise ValueError(f"model_impl {self.cfg.model_impl!r} is not one of: hf, flash_attn")
        self.flops_per_token = flops.model_flops_per_token(self.net, self.cfg.seq_len)

    def configure_model(self) -> None:
        if self.cfg.compile and not getattr(self, "_compiled", False):
            self.net.compile(mode=self.cfg.compile_mode)  # in place: state_dict keys stay the plain model's
            self._compiled = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=ids, labels=ids).loss

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        loss = self(batch)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=batch.shape[0])

    def on_validation_epoch_end(self) -> None:
        val = self.trainer.callback_metrics.get("val/loss")
        if val is not None:
            self.log("val/ppl", torch.exp(val.float().clamp(max=20)), sync_dist=True)

    def configure_optimizers(self):
        return self.make_optimizer(self.trainer.precision)

    def make_optimizer(self, precision: str) -> dict:
        """AdamW and its schedule for a run in Lightning `precision` (the bare benchmark loop calls
        this directly)."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # fused AdamW unscales float16 gradients inside its step, too late for clipping: use it
        # where there is no gradient scaler (bf16-mixed, 32-true)
        fused = self.device.type == "cuda" and precision != "16-mixed"
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas, fused=fused)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradient norm here rather than through the Trainer, which refuses fused AdamW.
        Gradients are unscaled by now (bf16 has no scaler; the float16 path uses unfused AdamW)."""
        if self.cfg.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
            self.log("grad_norm", norm, on_step=True, on_epoch=False)

    def lr_factor(self, step: int) -> float:
        """Linear warm-up to `lr`, then cosine down to `min_lr` at `max_steps`."""
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        floor = cfg.min_lr / cfg.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Checkpoints


def find_resume(cfg: TrainConfig) -> Path | None:
    if cfg.resume == "never":
        return None
    path = cfg.checkpoints / "last.ckpt" if cfg.resume == "auto" else Path(cfg.resume)
    if cfg.resume != "auto" and not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path if path.exists() else None


def inspect_checkpoint(path: Path, cfg: TrainConfig, vocab_size: int) -> dict:
    """Read a checkpoint's hyperparameters and refuse one that does not fit this run."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        saved = ckpt["hyper_parameters"]
        step = ckpt["global_step"]
    except Exception as err:
        others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it may have been cut short "
            f"when the session died. Delete it and resume from an earlier one ({', '.join(others) or 'none'}; "
            "set resume: PATH), or start over with resume: never."
        ) from err
    old = saved["cfg"]
    for key in ("model_impl", "model_size", "seq_len", "tokenizer"):
        was = old.get(key, TrainConfig.model_impl if key == "model_impl" else None)
        if was != getattr(cfg, key):
            raise CheckpointError(
                f"checkpoint {path} is for {key}={was!r} but this run asks for {getattr(cfg, key)!r}; "
                "use the same value to resume, or another ckpt_dir (or resume: never) to start a new run"
            )
    if saved.get("vocab_size") != vocab_size:
        raise CheckpointError(f"checkpoint {path} has a vocabulary of {saved.get('vocab_size')}, this run {vocab_size}")
    if old.get("attn") != cfg.attn:
        log.warning(
            "checkpoint %s was trained with attention %r; continuing with %r. The weights do not depend on "
            "the attention backend, so nothing is converted.",
            path, old.get("attn"), cfg.attn,
        )  # fmt: skip
    return {"step": step, "attn": old.get("attn")}


# ---------------------------------------------------------------------------------------------
# The run


def make_strategy(cfg: TrainConfig):
    """Lightning's own strategy for `cfg.strategy`; for FSDP, each transformer block is its own
    shard unit (flash-attn's GPT: its Block), so memory per GPU falls with the number of GPUs."""
    if cfg.strategy != "fsdp":
        return cfg.strategy
    from lightning.pytorch.strategies import FSDPStrategy

    if cfg.model_impl == "flash_attn":
        from flash_attn.modules.block import Block as block
    else:
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block as block
    return FSDPStrategy(auto_wrap_policy={block}, state_dict_type="full")


def resolve_precision(cfg: TrainConfig, machine: env.Machine) -> str:
    """The run's Lightning precision: `cfg.precision`, checked, or the machine's (auto)."""
    return precision.policy(machine, None if cfg.precision == "auto" else cfg.precision)


def train(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train, checkpoint, plot; returns a summary (also written to run_dir/summary.json).
    `callbacks` are added to the Trainer's own."""
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    started = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    machine = env.probe()
    torch.set_float32_matmul_precision("high")  # TF32 for whatever stays in float32 (Ampere and newer)
    fixed = env.fix_colab_libcuda(machine)
    if fixed:
        log.info(fixed)
    prec = resolve_precision(cfg, machine)
    dm = data.WikisourceData(cfg)
    dm.setup("fit")
    resume = find_resume(cfg)
    resumed_from = inspect_checkpoint(resume, cfg, dm.stats["vocab_size"]) if resume else None
    module = GPT2Module(dataclasses.asdict(cfg), vocab_size=dm.stats["vocab_size"],
                        tokenizer_fingerprint=dm.stats["tokenizer_fingerprint"])  # fmt: skip
    run_dir = Path(cfg.run_dir)
    session = len(list((run_dir / "logs").glob("session-*"))) if (run_dir / "logs").exists() else 0
    loggers = [CSVLogger(run_dir, name="logs", version=f"session-{session}")]
    if importlib.util.find_spec("tensorboard") is not None:  # TensorBoard too, where it is installed
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=f"session-{session}"))
    checkpoints = ModelCheckpoint(dirpath=cfg.checkpoints, filename="step-{step:06d}",
                                  every_n_train_steps=cfg.ckpt_every, save_last=True, save_top_k=-1,
                                  auto_insert_metric_name=False)  # fmt: skip
    samples = Samples(cfg, dm.tokenizer)
    callbacks = [checkpoints, Throughput(cfg, flops.peak_flops(machine.gpu_name)), samples, *(callbacks or [])]
    if cfg.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.log_every)))
    earlier = sorted(p.name for p in cfg.checkpoints.glob("*.ckpt")) if not resume else []
    if earlier:
        log.warning("%s already holds checkpoints of an earlier run (%s); this run does not resume from them "
                    "(resume: %s). Use another ckpt_dir to keep the runs apart.", cfg.checkpoints,
                    ", ".join(earlier[:3]), cfg.resume)  # fmt: skip
    with _lightning_quieted():
        trainer = _trainer(cfg, prec, loggers, callbacks)
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    summary = {}
    if trainer.is_global_zero:
        summary = summarize(cfg, trainer, dm, module, machine, prec, resumed_from, samples.last_text,
                            time.time() - started)  # fmt: skip
    return summary


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def _lightning_quieted():
    """Lightning without the lines a reader cannot act on: its advertisement for a cloud logger, a
    deprecation inside its own code, and its warning that the checkpoint folder is not empty (it
    holds the run's tokenizer.json by design; checkpoints of another run are reported above)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    tips = _NoTips()
    rank_zero.addFilter(tips)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
        try:
            yield
        finally:
            rank_zero.removeFilter(tips)


def _trainer(cfg: TrainConfig, prec: str, loggers: list, callbacks: list) -> L.Trainer:
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=make_strategy(cfg),
        precision=prec,
        max_steps=cfg.max_steps,
        accumulate_grad_batches=cfg.accumulate,
        val_check_interval=cfg.val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=cfg.val_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.log_every,
        logger=loggers,
        callbacks=callbacks,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # EndlessSampler shards by rank itself
        deterministic=False,
    )


def summarize(cfg, trainer, dm, module, machine, prec, resumed_from, sample, seconds) -> dict:
    run_dir = Path(cfg.run_dir)
    history = plots.read_metrics(run_dir / "logs")
    head_dim = module.net.config.n_embd // module.net.config.n_head
    dtype = precision.autocast_dtype(prec) or torch.float32
    chosen = cfg.attn
    if chosen == "auto":
        chosen = attention.pick(machine, dtype, head_dim, cfg.seq_len, dropout=cfg.dropout > 0, compiled=cfg.compile)
    perf = [r for r in history if r.get("perf/tokens_per_s")]
    steady = perf[len(perf) // 2 :] or perf  # the second half: after warm-up and compilation
    summary = {
        "config": dataclasses.asdict(cfg),
        "environment": machine_report.describe(machine).to_dict(),
        "precision": prec,
        "attention": chosen,
        "parameters": flops.parameter_count(module.net),
        "steps": trainer.global_step,
        "world_size": trainer.world_size,
        "resumed_from": resumed_from,
        "data": dm.stats,
        "final": {k: _last(history, k) for k in ("train/loss", "val/loss", "val/ppl")},
        "tokens_per_s": _median([r["perf/tokens_per_s"] for r in steady]),
        "mfu": _median([r["perf/mfu"] for r in steady if r.get("perf/mfu")]),
        "peak_mem_gib": max((r.get("perf/peak_mem_gib") or 0 for r in perf), default=None),
        "sample": sample,
        "seconds": round(seconds, 1),
    }
    plots.loss_curve(history, run_dir / "loss.png", title=f"GPT-2 {cfg.model_size}, {chosen}, {prec}")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return summary


def _last(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return values[-1] if values else None


def _median(values: list[float]):
    return float(np.median(values)) if values else None
