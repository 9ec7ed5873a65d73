"""The Lightning callbacks of a training run, one concern each.

- `Throughput`: tokens/s, MFU, peak memory and learning rate every `log_every` steps.
- `Samples`: text generated from `sample_prompt` every `sample_every` steps and at the end.
- `StopOnNonFiniteLoss`: a loss that is NaN or infinite ends the run before it writes a checkpoint of
  the diverged weights, naming the step and what to lower.
- `SaveOnInterrupt`: Ctrl-C (Jupyter's and Colab's stop button) ends the run after the step under
  way, with a checkpoint of it, and says how to continue.
- `StepTimer`: the wall-clock time of the optimizer steps after a warm-up, as one measurement
  (what `bench.training.lightning_overhead` compares with a bare loop).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import TrainingError
from vanilla_flash.models import gpt2
from vanilla_flash.training import data, precision

log = logging.getLogger("vanilla_flash.training.run")


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
            out = net.generate(
                ids,
                max_new_tokens=new_tokens,
                do_sample=True,
                top_k=50,
                generator=None,
                attention_mask=torch.ones_like(ids),
            )
        net.train(was_training)
        gpt2.set_attention(net, backend)
        text = data.decode(self.tokenizer, out[0])
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


class StopOnNonFiniteLoss(L.Callback):
    """Stop at a loss that is not finite, or at weights that are not. The first such step is recorded on the loss's
    device every step (no wait for the GPU); it is read every step on CPU, and on a GPU every `log_every` steps
    and before each checkpoint (callbacks run before Lightning's checkpointing). Before each checkpoint the
    weights are checked too: the update of a step whose loss was still finite can make them NaN (the loss shows
    it a step later). So no checkpoint of diverged weights is written, by Lightning's checkpointing or by
    `SaveOnInterrupt`'s at a Ctrl-C (`check_before_save`), and the last one written stays the one `resume: auto`
    takes."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.first_bad = None  # a 0-d tensor: the first step whose loss was not finite, -1 while none

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        stepped = (batch_idx + 1) % self.cfg.accumulate == 0
        step = trainer.global_step if stepped else trainer.global_step + 1
        loss = loss.detach()
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)
        if self.reads_at(step, trainer.max_steps, loss.device.type == "cpu") and (first := int(self.first_bad)) >= 0:
            value = float(loss) if not torch.isfinite(loss) else "NaN or infinite"
            raise self.diverged(f"the training loss became {value} at step {first}")
        if stepped and self.saves_at(step, trainer.max_steps):
            self.check_before_save(module, step)

    def check_before_save(self, module, step: int) -> None:
        """Raise `diverged` if a loss so far or the weights are not finite: before a checkpoint of `step`."""
        if self.first_bad is not None and (first := int(self.first_bad)) >= 0:
            raise self.diverged(f"the training loss became NaN or infinite at step {first}")
        if not _finite(module.parameters()):
            raise self.diverged(f"the weights became NaN or infinite at step {step} (its loss was still finite)")

    def diverged(self, what: str) -> TrainingError:
        cfg = self.cfg
        return TrainingError(
            f"{what} (lr {cfg.lr:g}, grad_clip {cfg.grad_clip:g}): the run diverged and stopped, writing no "
            f"checkpoint of it. Lower lr (GPT-2 124M trains at 6e-4; try {cfg.lr / 10:g}), keep grad_clip at 1.0 "
            "and warmup_steps above 0, then run again: resume: auto continues from the last checkpoint written "
            "before it diverged (resume: never starts over)."
        )

    def reads_at(self, step: int, max_steps: int, on_cpu: bool) -> bool:
        """Whether the recorded first bad step is read after `step` (which waits for a GPU)."""
        return on_cpu or step % self.cfg.log_every == 0 or self.saves_at(step, max_steps)

    def saves_at(self, step: int, max_steps: int) -> bool:
        """Whether Lightning may write a checkpoint after `step` (its weights are checked first)."""
        return step % self.cfg.ckpt_every == 0 or step >= max_steps


def _finite(tensors) -> bool:
    """Whether every value of `tensors` is finite (one wait for the GPU)."""
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class SaveOnInterrupt(L.Callback):
    """Ctrl-C (SIGINT: Jupyter's and Colab's stop button) ends the run at the end of the step under
    way, with a checkpoint of that step (`saved`: its step and path), instead of Lightning's shutdown
    that saves nothing. `before_save(module, step)` runs first and may refuse the save by raising
    (`StopOnNonFiniteLoss.check_before_save`: no checkpoint of weights that went NaN). A second Ctrl-C
    stops at once, as Python does."""

    def __init__(self, before_save=None):
        self.requested, self.saved, self._previous = False, None, None
        self.before_save = before_save

    def on_train_start(self, trainer, module):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame):
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step, with a checkpoint (press again to stop at once)", flush=True)

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if not self.requested or self.saved or (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        if self.before_save:
            self.before_save(module, trainer.global_step)
        path = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
        trainer.save_checkpoint(path)
        self.saved = (trainer.global_step, path)
        trainer.should_stop = True

    def on_train_end(self, trainer, module):
        self._restore()

    def on_exception(self, trainer, module, exception):
        self._restore()


class StepTimer(L.Callback):
    """Wall-clock time of a Lightning run's optimizer steps after the first `warmup`, measured over
    all of them at once: everything the trainer does per step (data, logging, progress bar) is in."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.seconds, self.steps = warmup, None, None, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        starting = self.start is None and trainer.global_step >= self.warmup
        ending = self.start is not None and trainer.global_step >= trainer.max_steps
        if not (starting or ending):
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if starting:
            self.start, self.first = time.perf_counter(), trainer.global_step
        else:  # the last step: stop before the end-of-training work (sample text, plots)
            self.seconds, self.steps = time.perf_counter() - self.start, trainer.global_step - self.first

    @property
    def step_seconds(self) -> float:
        if not self.steps:
            raise TrainingError(
                f"no step was timed: the run ended before its {self.warmup} warm-up steps were over (max_steps at "
                "most the warm-up, or a finished run resumed). Train more steps than the warm-up, from step 0."
            )
        return self.seconds / self.steps


class RunProgressBar(TQDMProgressBar):
    """Lightning's progress bar, its length the run's batches. With endless data Lightning takes the steps
    left for the batches, so with gradient accumulation its bar is full half-way through (600/600 of a
    600-step run at accumulate 2) and counts on to 1200/?; a resumed run counts its batches from where the
    checkpoint stopped, so its bar's length is the whole run's too (and a run resumed mid-epoch, which
    Lightning gives no epoch start, gets its length and title at the start). It shows the training loss, read
    when it refreshes (`get_metrics`)."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.on_train_epoch_start(trainer, pl_module)

    def get_metrics(self, trainer, pl_module) -> dict:
        """Lightning's items and the training loss, read here: when the bar refreshes (every `log_every` steps,
        when the loss is logged and the GPU waited for anyway), not after every batch as a `prog_bar` metric is."""
        items = super().get_metrics(trainer, pl_module)
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            items["train/loss"] = float(loss)
        return items

    @property
    def total_train_batches(self) -> int | float:
        t = self.trainer
        if t.max_epochs == -1 and t.max_steps is not None and t.max_steps > 0:
            return min(t.num_training_batches, t.max_steps * t.accumulate_grad_batches)
        return super().total_train_batches
