"""Checkpoints that never lose or mix up a run.

- `prepare()` runs before any work: the folder must be writable and hold room for a checkpoint;
  what a killed write left half-done is removed; `resume: never` moves an earlier run's files into
  `replaced-<time>/` (nothing is deleted) so the new run cannot be mistaken for it; `resume: auto`
  picks the checkpoint with the most steps, whatever its name.
- `inspect()` refuses a checkpoint that does not fit the run (model, data, tokenizer), naming the
  field.
- `AtomicCheckpointIO` writes each checkpoint under a temporary name in the same folder and renames
  it into place: a full disk or a kill mid-write leaves the previous checkpoint intact and no
  partial file under a checkpoint's name.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vanilla_flash import model as gpt2
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError

log = logging.getLogger("vanilla_flash.train")

PARTIAL = ".partial-"  # in the name of a checkpoint being written: `.step-000020.ckpt.partial-1234`
RUN_FILES = ("*.ckpt", "tokenizer.json", "tokenizer.meta.json")
# fields a checkpoint must share with the run that resumes it (the tokenizer's: `tokenizer_fields`)
MODEL_FIELDS = ("model_impl", "model_size", "seq_len", "tokenizer", "lang", "data_source")


def checkpoint_bytes(cfg: TrainConfig, vocab_size: int = 65536) -> int:
    """About how large one checkpoint of this run is: fp32 weights and AdamW's two moments."""
    n_layer, _, n_embd, _ = gpt2.dims(cfg.model_size, **cfg.model_dims)
    params = 12 * n_layer * n_embd**2 + (vocab_size + cfg.seq_len) * n_embd
    return 12 * params + 2**20


def prepare(cfg: TrainConfig) -> Path | None:
    """Make the checkpoint folder safe to train into; return the checkpoint to resume from, if any."""
    folder = cfg.checkpoints
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test{PARTIAL}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(
            f"cannot write checkpoints to {folder} ({type(err).__name__}: {err.strerror or err}): nothing was "
            "trained. Set ckpt_dir to a folder you can write to (on Colab, one on the mounted Drive)."
        ) from err
    need, free = checkpoint_bytes(cfg), shutil.disk_usage(folder).free
    if free < need:
        raise CheckpointError(
            f"{folder} has {free / 2**20:.0f} MiB free, and one checkpoint of this run takes about "
            f"{need / 2**20:.0f} MiB: nothing was trained. Free some space or choose another ckpt_dir."
        )
    for partial in folder.glob(f"*{PARTIAL}*"):  # a write that was killed: never a whole checkpoint
        log.warning("removing %s, a checkpoint whose writing was cut short", partial.name)
        partial.unlink()
    if cfg.resume == "never":
        _set_aside(folder)
        return None
    if cfg.resume != "auto":
        path = Path(cfg.resume)
        if not path.is_file():
            raise CheckpointError(f"resume: {path} does not exist; use auto, never or an existing .ckpt file")
        return path
    return latest(folder)


def _set_aside(folder: Path) -> None:
    earlier = sorted({p for pattern in RUN_FILES for p in folder.glob(pattern)})
    if not earlier:
        return
    aside = folder / f"replaced-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
    aside.mkdir()
    for path in earlier:
        path.rename(aside / path.name)
    log.warning("resume: never, so this run starts from step 0; the earlier run's %d files in %s were moved to "
                "%s/ (nothing deleted)", len(earlier), folder, aside.name)  # fmt: skip


def read(path: Path) -> dict:
    """A checkpoint, memory-mapped (its tensors are not read), or a CheckpointError saying it cannot be."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        ckpt["global_step"], ckpt["hyper_parameters"]  # noqa: B018  (a checkpoint has both)
        return ckpt
    except Exception as err:
        others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it may have been cut short "
            f"when the session died. Delete it and resume from an earlier one ({', '.join(others) or 'none'}; "
            "set resume: PATH), or start over with resume: never."
        ) from err


def step_of(path: Path) -> int:
    """The optimizer steps a checkpoint holds."""
    return int(read(path)["global_step"])


def latest(folder: Path) -> Path | None:
    """The checkpoint in `folder` with the most steps (`last.ckpt` on a tie); None if there is none."""
    found = sorted(folder.glob("*.ckpt"), key=lambda p: (step_of(p), p.name == "last.ckpt"))
    return found[-1] if found else None


def inspect(path: Path, cfg: TrainConfig, vocab_size: int) -> dict:
    """Read a checkpoint's hyperparameters and refuse one that does not fit this run."""
    ckpt = read(path)
    step, saved = int(ckpt["global_step"]), ckpt["hyper_parameters"]
    old = TrainConfig.from_dict({k: v for k, v in saved["cfg"].items() if k in TrainConfig.__dataclass_fields__})
    fields = [*MODEL_FIELDS, *(["bpe_vocab_size"] if cfg.tokenizer == "bpe" else [])]
    for key in fields:
        if getattr(old, key) != getattr(cfg, key):
            raise CheckpointError(
                f"checkpoint {path} is for {key}={getattr(old, key)!r} but this run asks for {getattr(cfg, key)!r}; "
                "use the same value to resume, or another ckpt_dir (or resume: never) to start a new run"
            )
    dims, was = gpt2.dims(cfg.model_size, **cfg.model_dims), gpt2.dims(old.model_size, **old.model_dims)
    if dims != was:
        raise CheckpointError(f"checkpoint {path} has (n_layer, n_head, n_embd) = {was[:3]}, this run {dims[:3]}")
    if saved.get("vocab_size") != vocab_size:
        raise CheckpointError(f"checkpoint {path} has a vocabulary of {saved.get('vocab_size')}, this run {vocab_size}")
    if old.attn != cfg.attn:
        log.warning("checkpoint %s was trained with attention %r; continuing with %r. The weights do not depend "
                    "on the attention backend, so nothing is converted.", path, old.attn, cfg.attn)  # fmt: skip
    return {"step": step, "attn": old.attn, "path": str(path)}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: a temporary file in the same folder, renamed into
    place when whole; on failure it is removed and the error says what is still there."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        partial = path.with_name(f".{path.name}{PARTIAL}{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(checkpoint, partial)  # straight to disk: a full disk fails here, not after
            os.replace(partial, path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            kept = sorted(p.name for p in path.parent.glob("*.ckpt"))
            raise CheckpointError(
                f"the checkpoint {path.name} could not be written ({type(err).__name__}: {err.strerror or err}). "
                f"The earlier checkpoints are intact ({', '.join(kept) or 'none yet'}): free space in "
                f"{path.parent} (or set another ckpt_dir), then run again with resume: auto to continue "
                "from the last of them."
            ) from err
