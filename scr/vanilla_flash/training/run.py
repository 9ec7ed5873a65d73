"""Train GPT-2 on Wikisource with PyTorch Lightning: the module and the run.

`train(cfg)` wires the pieces. Before any work it resolves the precision and the attention backend
that will run (`attention.resolve`: `auto` resolved once, and recorded), and claims the run's folders
(`checkpoints.claim`: writable, used by no other run, the checkpoint to resume from fits); it stops,
changing nothing and showing the finished run's summary, if that checkpoint has reached `max_steps`
already. Then
`datamodule.WikisourceData` (documents, tokenizer, packed blocks in a resumable order), `GPT2Module` (the
model with the chosen attention backend and its optimizer), the callbacks of
`vanilla_flash.training.callbacks`, checkpoints every `ckpt_every` steps and `last.ckpt` (written atomically,
resumed automatically), and at the end a summary (`run_dir/summary.json`) and the loss curve
(`run_dir/loss.png`). A loss that is not finite stops the run before a checkpoint of it is written;
Ctrl-C stops it after the step under way, with a checkpoint (`vanilla_flash.training.callbacks`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.config import TrainConfig
from vanilla_flash.files import write_folder_atomic
from vanilla_flash.models import flops, gpt2
from vanilla_flash.results import plots, provenance
from vanilla_flash.training import checkpoints, datamodule, precision
from vanilla_flash.training.callbacks import RunProgressBar, Samples, SaveOnInterrupt, StopOnNonFiniteLoss, Throughput

log = logging.getLogger(__name__)


class GPT2Module(L.LightningModule):
    """GPT-2 (`model_impl`: transformers', this project's compact one, or flash-attn's) with the run's
    attention backend; AdamW
    with weight-decay groups, linear warm-up then cosine learning rate, gradient clipping."""

    def __init__(self, cfg: TrainConfig, vocab_size: int, tokenizer_fingerprint: str | None = None):
        super().__init__()
        # kept in every checkpoint as plain values (`checkpoints.saved_config` reads them back)
        self.save_hyperparameters(
            {"cfg": dataclasses.asdict(cfg), "vocab_size": vocab_size, "tokenizer_fingerprint": tokenizer_fingerprint}
        )
        self.cfg = cfg
        common = dict(vocab_size=vocab_size, seq_len=self.cfg.seq_len, dropout=self.cfg.dropout)
        if self.cfg.model_impl == "flash_attn":
            from vanilla_flash.models import flash_attn_gpt as fa_gpt

            self.net = fa_gpt.build(self.cfg.model_size, fused=self.cfg.fused, **common, **self.cfg.model_dims)
        elif self.cfg.model_impl == "vanilla":
            from vanilla_flash.models import vanilla as vanilla_gpt

            self.net = vanilla_gpt.build(
                self.cfg.model_size,
                attn=self.cfg.attn,
                loss=self.cfg.loss,
                residual=self.cfg.residual,
                float8=self.cfg.float8,
                **common,
                **self.cfg.model_dims,
            )
        elif self.cfg.model_impl == "hf":
            self.net = gpt2.build(self.cfg.model_size, attn=self.cfg.attn, **common, **self.cfg.model_dims)
        else:
            raise ValueError(f"model_impl {self.cfg.model_impl!r} is not one of: hf, vanilla, flash_attn")
        self.flops_per_token = flops.model_flops_per_token(self.net, self.cfg.seq_len)
        self.attention = self.cfg.attn  # the backend that runs (`train` records what `auto` resolves to)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """What a finished run's summary needs, kept in its checkpoints (`_nothing_to_do` reads it)."""
        trainer = self.trainer
        loss = trainer.callback_metrics.get("train/loss")
        checkpoint["vanilla_flash"] = {
            "attention": self.attention,
            "precision": trainer.precision,
            "train/loss": None if loss is None else float(loss),
        }

    def configure_model(self) -> None:
        if self.cfg.compile and not getattr(self, "_compiled", False):
            self.net.compile(mode=self.cfg.compile_mode)  # in place: state_dict keys stay the plain model's
            self._compiled = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=ids, labels=ids).loss

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        # not prog_bar=True: Lightning turns each progress-bar metric into a Python number after every batch, a wait
        # for the GPU to run out of work (1.3% of a step on an H100: results/h100/speed/step-gaps-run); the bar
        # reads the loss when it refreshes instead, every log_every steps (`callbacks.RunProgressBar`)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
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
# The run


def make_strategy(cfg: TrainConfig):
    """Lightning's own strategy for `cfg.strategy`; for FSDP, each transformer block is its own
    shard unit (flash-attn's GPT: its Block), so memory per GPU falls with the number of GPUs."""
    if cfg.strategy != "fsdp":
        return cfg.strategy
    from lightning.pytorch.strategies import FSDPStrategy

    if cfg.model_impl == "flash_attn":
        from flash_attn.modules.block import Block as block
    elif cfg.model_impl == "vanilla":
        from vanilla_flash.models.vanilla import Block as block
    else:
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block as block
    return FSDPStrategy(auto_wrap_policy={block}, state_dict_type="full")


def train(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train, checkpoint, plot; returns a summary (also written to run_dir/summary.json and beside
    the checkpoints). `callbacks` are added to the Trainer's own."""
    started = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    machine = env.probe()
    torch.set_float32_matmul_precision("high")  # TF32 for whatever stays in float32 (Ampere and newer)
    fixed = env.fix_colab_libcuda(machine)
    if fixed:
        log.info(fixed)
    prec = precision.policy(machine, cfg.precision)
    backend = attention.resolve(  # the backend that runs, `auto` resolved: the summary records it
        cfg.attn,
        machine,
        dtype=precision.compute_dtype(prec),
        head_dim=cfg.head_dim,
        dropout=cfg.dropout > 0,
        compiled=cfg.compile,
    )
    for note in cfg.notes:
        log.warning(note)
        print(f"NOTE: {note}", flush=True)
    # Lightning's DDP launcher runs this again in each further process: the first one holds the lock
    with checkpoints.claim(cfg, lock=not _launched_rank()) as resume:
        return _train(cfg, callbacks, machine, prec, backend, resume, started)


def _launched_rank() -> bool:
    """Whether this process is one that Lightning's launcher started for a further device or node."""
    return any(int(os.environ.get(name, "0") or 0) for name in ("LOCAL_RANK", "NODE_RANK"))


def _train(cfg: TrainConfig, callbacks, machine: env.Machine, prec: str, backend: str, resume, started: float):
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    if resume and (done := checkpoints.step_of(resume)) >= cfg.max_steps:
        return _nothing_to_do(cfg, resume, done)
    dm = datamodule.WikisourceData(cfg, resuming=resume is not None)
    dm.setup("fit")
    resumed_from = checkpoints.inspect(resume, cfg, dm.stats["vocab_size"]) if resume else None
    module = GPT2Module(
        cfg,
        vocab_size=dm.stats["vocab_size"],
        tokenizer_fingerprint=dm.stats["tokenizer_fingerprint"],
    )
    module.attention = backend
    run_dir = Path(cfg.run_dir)
    session = len(list((run_dir / "logs").glob("session-*"))) if (run_dir / "logs").exists() else 0
    loggers = [CSVLogger(run_dir, name="logs", version=f"session-{session}")]
    if importlib.util.find_spec("tensorboard") is not None:  # TensorBoard too, where it is installed
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=f"session-{session}"))
    saver = ModelCheckpoint(
        dirpath=cfg.checkpoints,
        filename="step-{step:06d}",
        every_n_train_steps=cfg.ckpt_every,
        save_last=True,
        save_top_k=-1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )  # one run per folder: no last-v1.ckpt
    stop = StopOnNonFiniteLoss(cfg)
    samples, interrupt = Samples(cfg, dm.tokenizer), SaveOnInterrupt(before_save=stop.check_before_save)
    callbacks = [
        stop,
        interrupt,
        saver,
        Throughput(cfg, flops.peak_flops(machine.gpu_name)),
        samples,
        *(callbacks or []),
    ]
    if cfg.progress_bar:
        callbacks.append(RunProgressBar(refresh_rate=max(1, cfg.log_every)))
    with _lightning_quieted():
        trainer = _trainer(cfg, prec, loggers, callbacks)
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    summary = {}
    if trainer.is_global_zero:
        summary = summarize(
            cfg, trainer, dm, module, machine, prec, resumed_from, samples.last_text, time.time() - started
        )
        if cfg.model_impl in ("hf", "vanilla"):  # a transformers checkpoint: GPT2LMHeadModel.from_pretrained
            write_folder_atomic(Path(cfg.run_dir) / "model", module.net.save_pretrained)
    if interrupt.saved:
        step, path = interrupt.saved
        summary["interrupted_at"] = step
        print(
            f"Interrupted: step {step} is saved in {path}. To continue, run the same command (or notebook cell) "
            "again with resume: auto.",
            flush=True,
        )
    return summary


def _nothing_to_do(cfg: TrainConfig, resume: Path, done: int) -> dict:
    """A resumed run that has reached max_steps already: say so, change nothing, return the finished
    run's summary: run_dir's, else the copy beside the checkpoints (a Colab session's run_dir is gone
    with the session, its checkpoints on Drive are not), else what the checkpoint itself holds."""
    note = (
        f"nothing to train: {resume} is at step {done} and max_steps is {cfg.max_steps}; set max_steps above "
        f"{done} to train on. Nothing was changed; this is the finished run's summary."
    )
    print(note, flush=True)
    for path in (Path(cfg.run_dir) / "summary.json", cfg.checkpoints / "summary.json"):
        if path.exists() and (summary := json.loads(path.read_text())).get("steps") == done:
            return {**summary, "note": note}
    ckpt = checkpoints.read(resume)
    old = checkpoints.saved_config(ckpt)
    finished = ckpt.get("vanilla_flash", {})
    summary = {key: None for key in SUMMARY_KEYS} | {
        "config": dataclasses.asdict(old),
        "model": old.model_label,
        "attention": finished.get("attention", old.attn),
        "precision": finished.get("precision"),
        "steps": done,
        "data": {"source": old.data_source},
        "final": {"train/loss": finished.get("train/loss"), "val/loss": None, "val/ppl": None},
        "sample": "",
    }
    return {**summary, "note": note + f" (rebuilt from {resume.name}: run_dir holds no summary of it)"}


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def _lightning_quieted():
    """Lightning without the lines a reader cannot act on: its advertisement for a cloud logger, a
    deprecation inside its own code, and its warning that the checkpoint folder is not empty (it
    holds the run's tokenizer.json by design; an earlier run's files were set aside by
    `checkpoints.prepare`)."""
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
        plugins=[checkpoints.AtomicCheckpointIO()],
        deterministic=False,
    )


def summarize(cfg, trainer, dm, module, machine, prec, resumed_from, sample, seconds) -> dict:
    run_dir = Path(cfg.run_dir)
    history = plots.read_metrics(run_dir / "logs")
    chosen = module.attention
    perf = [r for r in history if r.get("perf/tokens_per_s")]
    steady = perf[len(perf) // 2 :] or perf  # the second half: after warm-up and compilation
    summary = {
        "config": dataclasses.asdict(cfg),
        "model": cfg.model_label,
        "environment": provenance.describe(machine).to_dict(),
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
    assert set(summary) == set(SUMMARY_KEYS)
    plots.loss_curve(history, run_dir / "loss.png", title=f"{cfg.model_label}, {chosen}, {prec}")
    for path in (run_dir / "summary.json", cfg.checkpoints / "summary.json"):  # the second outlives a Colab session
        provenance.write_json(path, summary)
    return summary


SUMMARY_KEYS = (
    "config",
    "model",
    "environment",
    "precision",
    "attention",
    "parameters",
    "steps",
    "world_size",
    "resumed_from",
    "data",
    "final",
    "tokens_per_s",
    "mfu",
    "peak_mem_gib",
    "sample",
    "seconds",
)


def _last(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return values[-1] if values else None


def _median(values: list[float]):
    return float(np.median(values)) if values else None
