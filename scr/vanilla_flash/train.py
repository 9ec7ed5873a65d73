"""Train GPT-2 on Wikisource with PyTorch Lightning.

One YAML file of `TrainConfig` fields drives the command line (``python -m vanilla_flash train
--config notebooks/params/cpu.yaml``) and the notebooks. `train()` wires the pieces:

- `WikisourceData` (a `LightningDataModule`): documents, tokenizer, packed blocks; the training
  order is a seeded, endless sequence of permutations, so a resumed run reads the same blocks it
  would have read had it never stopped.
- `GPT2Module` (a `LightningModule`): the GPT-2 of `vanilla_flash.model` with the chosen attention
  backend; AdamW with weight-decay groups, warm-up then cosine learning rate.
- Callbacks: throughput and MFU, sample text, the loss-curve plot; checkpoints every
  `ckpt_every` steps and `last.ckpt`, resumed automatically.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vanilla_flash import attention, data, env, precision
from vanilla_flash import model as gpt2

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed; the message says why and what to do."""


@dataclass
class TrainConfig:
    # where things go
    run_dir: str = "runs/tiny-vi"
    ckpt_dir: str | None = None  # default run_dir/checkpoints; on Colab a Google Drive folder
    cache_dir: str | None = None  # token cache; default run_dir/../cache
    # data
    data_source: str = "sample"  # sample | hub
    lang: str = "vi"
    max_docs: int | None = None
    max_bytes: int | None = None
    val_fraction: float = 0.1
    # tokenizer
    tokenizer: str = "gpt2"  # gpt2 | bpe
    bpe_vocab_size: int = 4096
    # model
    model_impl: str = "hf"  # hf (transformers' GPT2LMHeadModel) | flash_attn (flash-attn's own GPT, fa_gpt)
    fused: list = field(default_factory=list)  # flash_attn model only: fused_bias_fc, fused_mlp, ...
    model_size: str = "tiny"
    seq_len: int = 128
    attn: str = "auto"
    dropout: float = 0.0
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune
    # optimisation
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10
    max_steps: int = 60
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (from the hardware) | 32-true | 16-mixed | bf16-mixed
    seed: int = 1234
    # hardware
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"  # auto | ddp | fsdp
    # what to watch
    log_every: int = 5
    val_every: int = 20
    val_batches: int = 8
    sample_every: int = 0  # 0: only at the end
    sample_prompt: str = "Trăm năm trong cõi người ta,"
    sample_tokens: int = 40
    ckpt_every: int = 20
    resume: str = "auto"  # auto (last.ckpt if there is one) | never | a checkpoint path
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path, **overrides) -> TrainConfig:
        import yaml

        values = yaml.safe_load(Path(path).read_text()) or {}
        if isinstance(values.get("train"), dict):  # a notebook parameters file: its `train` section
            values = values["train"]
        return cls.from_dict({**values, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "betas" in values:
            values = {**values, "betas": tuple(values["betas"])}
        return cls(**values)

    @property
    def checkpoints(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(self.run_dir) / "checkpoints"

    @property
    def token_cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.run_dir).parent / "cache"


# ---------------------------------------------------------------------------------------------
# Data


class Blocks(Dataset):
    def __init__(self, blocks: np.ndarray):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.blocks[i].astype(np.int64))


class EndlessSampler(Sampler[int]):
    """Block indices in an endless run of seeded permutations, position `start` onwards, strided
    over `world` ranks. Position p of the run is block perm(seed + p // n)[p % n], whatever
    happened before, which is what makes resuming exact."""

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world

    def __iter__(self):
        position = self.start * self.world + self.rank
        epoch, order = None, None
        while True:
            if position // self.n != epoch:
                epoch = position // self.n
                order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            yield order[position % self.n]
            position += self.world


class WikisourceData(L.LightningDataModule):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.samples_seen = 0  # per rank, restored from a checkpoint
        self.tokenizer = None
        self.stats: dict = {}

    def tokenizer_path(self) -> Path:
        return self.cfg.checkpoints / "tokenizer.json"

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        cfg = self.cfg
        docs = data.load_documents(cfg.data_source, cfg.lang, max_docs=cfg.max_docs, max_bytes=cfg.max_bytes)
        train_docs, val_docs = data.split(docs, cfg.val_fraction, cfg.seed)
        if cfg.tokenizer == "bpe":
            path = self.tokenizer_path()
            if path.exists():  # a resumed run keeps the tokenizer it started with
                self.tokenizer = data.tokenizer("bpe", path=path)
            else:
                self.tokenizer = data.train_bpe((d["text"] for d in train_docs), cfg.bpe_vocab_size, path)
        else:
            self.tokenizer = data.tokenizer(cfg.tokenizer)
        self.train_blocks = data.pack(train_docs, self.tokenizer, cfg.seq_len, cfg.token_cache)
        self.val_blocks = data.pack(val_docs, self.tokenizer, cfg.seq_len, cfg.token_cache)
        val_text = [d["text"] for d in val_docs]
        self.stats = {
            "documents": {"train": len(train_docs), "val": len(val_docs)},
            "blocks": {"train": len(self.train_blocks), "val": len(self.val_blocks)},
            "tokenizer": cfg.tokenizer,
            "vocab_size": len(self.tokenizer),
            "tokenizer_fingerprint": data.fingerprint(self.tokenizer),
            "tokens_per_word_val": round(data.tokens_per_word(self.tokenizer, val_text), 3),
        }
        log.info("data: %s", self.stats)

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        sampler = EndlessSampler(len(self.train_blocks), self.cfg.seed, self.samples_seen, rank, world)
        return DataLoader(Blocks(self.train_blocks), batch_size=self.cfg.batch_size, sampler=sampler,
                          drop_last=True, pin_memory=torch.cuda.is_available())  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Blocks(self.val_blocks), batch_size=self.cfg.batch_size, shuffle=False)

    def state_dict(self) -> dict:
        steps = self.trainer.global_step if self.trainer else 0
        return {"samples_seen": steps * self.cfg.accumulate * self.cfg.batch_size,
                "tokenizer_fingerprint": self.stats.get("tokenizer_fingerprint")}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("tokenizer_fingerprint")
        if saved and self.stats and saved != self.stats["tokenizer_fingerprint"]:
            raise CheckpointError(
                f"the checkpoint was trained with another tokenizer (fingerprint {saved}, now "
                f"{self.stats['tokenizer_fingerprint']}): its token ids mean other things. Resume with the "
                "tokenizer it was trained with (same `tokenizer`, and for `bpe` the tokenizer.json saved next "
                "to the checkpoint), or start a new run in another ckpt_dir."
            )
        self.samples_seen = state["samples_seen"]


# ---------------------------------------------------------------------------------------------
# Model


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12·L·H·Q·T for attention (PaLM appendix B)."""
    return 6 * n_params + 12 * n_layer * n_head * head_dim * seq_len


# Dense half-precision tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0, "V100": 125.0}


def peak_flops(gpu_name: str | None) -> float | None:
    if not gpu_name:
        return None
    for key, tflops in PEAK_TFLOPS.items():
        if key in gpu_name:
            return tflops * 1e12
    return None


class GPT2Module(L.LightningModule):
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
        c = self.net.config
        self.flops_per_token = flops_per_token(gpt2.parameter_count(self.net), c.n_layer, c.n_head,
                                               c.n_embd // c.n_head, self.cfg.seq_len)  # fmt: skip

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
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # fused AdamW unscales float16 gradients inside its step, too late for clipping: use it
        # where there is no gradient scaler (bf16-mixed, 32-true)
        fused = self.device.type == "cuda" and self.trainer_precision() != "16-mixed"
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas, fused=fused)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def trainer_precision(self) -> str | None:
        try:
            return self.trainer.precision
        except RuntimeError:  # not attached to a Trainer (the bare benchmark loop)
            return getattr(self, "loop_precision", None)

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
# Callbacks


class Throughput(L.Callback):
    """tokens/s, MFU, peak memory and learning rate, logged every `log_every` steps."""

    def __init__(self, cfg: TrainConfig, peak: float | None):
        self.cfg, self.peak = cfg, peak
        self.tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.accumulate
        self.mark = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.cfg.accumulate:
            return
        step = trainer.global_step
        if step % self.cfg.log_every == 0 or self.mark is None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            now = time.perf_counter()
            if self.mark is not None and step > self.mark[0]:
                seconds = (now - self.mark[1]) / (step - self.mark[0])
                tokens_s = self.tokens_per_step * trainer.world_size / seconds
                metrics = {"perf/tokens_per_s": tokens_s, "perf/step_s": seconds}
                if self.peak:
                    metrics["perf/mfu"] = tokens_s / trainer.world_size * module.flops_per_token / self.peak
                if torch.cuda.is_available():
                    metrics["perf/peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
                metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
                module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
                pbar = {"tok/s": f"{tokens_s / 1e3:.1f}k"}
                if "perf/mfu" in metrics:
                    pbar["mfu"] = f"{metrics['perf/mfu']:.0%}"
                trainer.progress_bar_metrics.update(pbar)
            self.mark = (step, now)


class Samples(L.Callback):
    """Generate from `sample_prompt` every `sample_every` steps and at the end; appended to
    run_dir/samples.txt and logged."""

    def __init__(self, cfg: TrainConfig, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.path = Path(cfg.run_dir) / "samples.txt"
        self.last_text = ""

    def generate(self, trainer, module) -> str:
        net = module.net
        ids = self.tokenizer(self.cfg.sample_prompt, return_tensors="pt")["input_ids"].to(module.device)
        ids = ids[:, -(net.config.n_positions - 1) :]  # the model has n_positions position embeddings
        new_tokens = min(self.cfg.sample_tokens, net.config.n_positions - ids.shape[1])
        was_training, backend = net.training, net.config._attn_implementation
        net.eval()
        # generation passes a mask and, with a cache, one query against many keys: let `auto` route
        # that to a backend that takes both (the weights do not depend on the backend)
        gpt2.set_attention(net, "auto")
        dtype = precision.autocast_dtype(trainer.precision)
        with torch.no_grad(), torch.autocast(module.device.type, dtype=dtype, enabled=dtype is not None):
            out = net.generate(ids, max_new_tokens=new_tokens, do_sample=True, top_k=50,
                               generator=None, attention_mask=torch.ones_like(ids))  # fmt: skip
        net.train(was_training)
        gpt2.set_attention(net, backend)
        text = self.tokenizer.decode(out[0], skip_special_tokens=True)
        self.last_text = text
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(f"--- step {trainer.global_step}\n{text}\n")
            log.info("sample at step %d: %s", trainer.global_step, text)
        return text

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        every = self.cfg.sample_every
        if every and trainer.global_step % every == 0 and (batch_idx + 1) % self.cfg.accumulate == 0:
            self.generate(trainer, module)

    def on_train_end(self, trainer, module):
        self.generate(trainer, module)


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
    dm = WikisourceData(cfg)
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
    callbacks = [checkpoints, Throughput(cfg, peak_flops(machine.gpu_name)), samples, *(callbacks or [])]
    if cfg.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.log_every)))
    trainer = L.Trainer(
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
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    summary = {}
    if trainer.is_global_zero:
        summary = summarize(cfg, trainer, dm, module, machine, prec, resumed_from, samples.last_text,
                            time.time() - started)  # fmt: skip
    return summary


def summarize(cfg, trainer, dm, module, machine, prec, resumed_from, sample, seconds) -> dict:
    from vanilla_flash import plots

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
        "environment": env.describe(machine).to_dict(),
        "precision": prec,
        "attention": chosen,
        "parameters": gpt2.parameter_count(module.net),
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
