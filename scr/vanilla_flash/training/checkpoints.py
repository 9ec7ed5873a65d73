"""Checkpoints that never lose or mix up a run.

`claim(cfg)` is what a run calls before any work: the steps below, in order, yielding the checkpoint
to resume from.
- `writable()` checks each folder a run writes (run_dir, the checkpoints, the token cache) before
  any work, naming the parameter to change.
- `one_run_at_a_time()` holds a lock file in the run's folders: a second run into them is refused,
  naming the first (host, process, start time); the lock of a process that is gone is taken over.
- `prepare()` runs before any work: what a killed write left half-done is removed, then the folder
  must hold room for a checkpoint; `resume: never` moves an earlier run's files (checkpoints, and
  the model, summary, plots and logs in run_dir) into `replaced-<time>/` (nothing is deleted) so the
  new run cannot be mistaken for it; `resume: auto` picks the checkpoint with the most steps,
  whatever its name.
- `check_fits()` refuses, before any work, a checkpoint that does not fit the run (model, data,
  split, tokenizer), naming the field; `inspect()` checks its vocabulary once the data is read.
- `AtomicCheckpointIO` writes each checkpoint with `files.write_atomic`: a full disk or a kill
  mid-write leaves the previous checkpoint intact and no partial file under a checkpoint's name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError
from vanilla_flash.files import PARTIAL, write_atomic

log = logging.getLogger("vanilla_flash.training.run")

RUN_FILES = ("*.ckpt", "tokenizer.json", "tokenizer.meta.json", "summary.json")  # in the checkpoint folder
RUN_OUTPUTS = ("model", "summary.json", "loss.png", "samples.txt", "logs", "tensorboard")  # in run_dir
LOCK = ".run.lock"
LOCK_STALE_SECONDS = 300  # a lock from another host not refreshed for this long belongs to a dead run
# fields a checkpoint must share with the run that resumes it (the tokenizer's: `tokenizer_fields`)
MODEL_FIELDS = ("model_impl", "model_size", "seq_len", "tokenizer", "lang", "data_source")
# fields that decide which text is trained on and which is held out for validation
DATA_FIELDS = ("seed", "val_fraction", "max_docs", "max_bytes")


def writable(folder: Path, field: str, what: str) -> None:
    """Make `folder` if needed and check that a file can be written in it, or a CheckpointError
    naming the parameter `field` that sets it and saying what goes there (`what`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test{PARTIAL}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(
            f"cannot write {what} to {folder} ({type(err).__name__}: {err.strerror or err}): nothing was trained. "
            f"Set {field} to a folder you can write to (on Colab, one on the mounted Drive)."
        ) from err


def check_folders(cfg: TrainConfig) -> None:
    """Every folder the run writes, checked before any work (`writable`)."""
    writable(cfg.checkpoints, "ckpt_dir", "checkpoints")
    writable(Path(cfg.run_dir), "run_dir", "the run's logs, summary, loss curve and model")
    writable(cfg.token_cache, "cache_dir", "the token cache (by default next to run_dir)")


@contextlib.contextmanager
def claim(cfg: TrainConfig, *, lock: bool = True):
    """Every folder of the run made ready before any work, for the duration of the block: each can be
    written (`check_folders`); a lock in the checkpoint folder and in run_dir (`one_run_at_a_time`;
    `lock=False` in a process Lightning's launcher started, whose first process holds it); the
    checkpoint folder cleared of cut-short writes, with room for a checkpoint (`prepare`). Yields the
    checkpoint to resume from, checked to fit the run (`check_fits`), or None."""
    check_folders(cfg)
    with one_run_at_a_time(cfg.checkpoints, Path(cfg.run_dir)) if lock else contextlib.nullcontext():
        resume = None if not lock and cfg.resume == "never" else prepare(cfg)
        if resume:
            check_fits(resume, cfg)
        yield resume


# ---------------------------------------------------------------------------------------------
# One run per folder


@contextlib.contextmanager
def one_run_at_a_time(*folders: Path):
    """Hold a lock file in each of `folders` for the duration of the block; refreshed every minute
    so that a run on another machine (Colab sessions sharing a Drive folder) can tell a live run from
    a dead one."""
    held: list[Path] = []
    stop = threading.Event()
    try:
        for folder in dict.fromkeys(Path(f).resolve() for f in folders):
            held.append(_take_lock(folder))

        def refresh():
            while not stop.wait(60):
                for path in held:
                    with contextlib.suppress(OSError):
                        os.utime(path)

        threading.Thread(target=refresh, daemon=True, name="run-lock").start()
        yield
    finally:
        stop.set()
        for path in held:
            path.unlink(missing_ok=True)


def _take_lock(folder: Path) -> Path:
    path = folder / LOCK
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}"}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            other = _read_lock(path)
            if _still_running(other, path):
                raise CheckpointError(
                    f"{folder} is in use by another run (host {other['host']}, process {other['pid']}, started "
                    f"{other['started']}): two runs in one folder would mix their checkpoints. Wait for it to end "
                    f"or stop it, or give this run its own run_dir and ckpt_dir. If that run is gone, delete {path}."
                ) from None
            log.warning("taking over %s: the run that held it (%s) is gone", path, other)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise CheckpointError(f"cannot take the lock {path}: other runs keep starting in {folder}")


def _read_lock(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _still_running(lock: dict, path: Path) -> bool:
    """Whether the run that wrote `lock` is alive: on this host, its process exists (and is not this
    one, whose earlier run ended without its clean-up); on another, its lock was refreshed lately."""
    if lock.get("host") == socket.gethostname() and isinstance(lock.get("pid"), int):
        if lock["pid"] == os.getpid():
            return False
        try:
            os.kill(lock["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return bool(lock) and age < LOCK_STALE_SECONDS


def checkpoint_bytes(cfg: TrainConfig, vocab_size: int = 65536) -> int:
    """About how large one checkpoint of this run is: fp32 weights and AdamW's two moments."""
    n_layer, _, n_embd, _ = cfg.dims
    params = 12 * n_layer * n_embd**2 + (vocab_size + cfg.seq_len) * n_embd
    return 12 * params + 2**20


def prepare(cfg: TrainConfig) -> Path | None:
    """Make the checkpoint folder safe to train into (`check_folders` has checked it can be written);
    return the checkpoint to resume from, if any."""
    folder = cfg.checkpoints
    writable(folder, "ckpt_dir", "checkpoints")
    for partial in folder.glob(f"*{PARTIAL}*"):  # a write that was killed: never a whole checkpoint
        log.warning("removing %s, a file whose writing was cut short", partial.name)
        partial.unlink()
    need, free = checkpoint_bytes(cfg), shutil.disk_usage(folder).free  # after the partial files are gone
    if free < need:
        raise CheckpointError(
            f"{folder} has {free / 2**20:.0f} MiB free, and one checkpoint of this run takes about "
            f"{need / 2**20:.0f} MiB: nothing was trained. Free some space or choose another ckpt_dir."
        )
    if cfg.resume == "never":
        _set_aside(folder, RUN_FILES)
        _set_aside(Path(cfg.run_dir), RUN_OUTPUTS)
        return None
    if cfg.resume != "auto":
        path = Path(cfg.resume)
        if not path.is_file():
            raise CheckpointError(f"resume: {path} does not exist; use auto, never or an existing .ckpt file")
        return path
    return latest(folder)


def _set_aside(folder: Path, patterns: tuple[str, ...]) -> None:
    """Move an earlier run's files (`patterns`) in `folder` into `folder/replaced-<time>/`."""
    earlier = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    if not earlier:
        return
    aside = folder / f"replaced-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
    aside.mkdir(exist_ok=True)
    for path in earlier:
        path.rename(aside / path.name)
    log.warning(
        "resume: never, so this run starts from step 0; the earlier run's %d files in %s were moved to "
        "%s/ (nothing deleted)",
        len(earlier),
        folder,
        aside.name,
    )


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


def saved_config(ckpt: dict) -> TrainConfig:
    """The training config a checkpoint was written with."""
    saved = ckpt["hyper_parameters"]["cfg"]
    return TrainConfig.from_dict({k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})


def check_fits(path: Path, cfg: TrainConfig) -> TrainConfig:
    """Refuse, before any work, a checkpoint that does not fit this run: another model, other data,
    another split of it, another tokenizer. Returns the config it was trained with."""
    old = saved_config(read(path))
    fields = [*MODEL_FIELDS, *DATA_FIELDS, *(["bpe_vocab_size"] if cfg.tokenizer == "bpe" else [])]
    for key in fields:
        if getattr(old, key) != getattr(cfg, key):
            why = (
                " (it decides which text is held out for validation: another value would train on text the run "
                "validated on)"
                if key in DATA_FIELDS
                else ""
            )
            raise CheckpointError(
                f"checkpoint {path} is for {key}={getattr(old, key)!r} but this run asks for {getattr(cfg, key)!r}"
                f"{why}; use the same value to resume, or another ckpt_dir (or resume: never) to start a new run"
            )
    dims, was = cfg.dims, old.dims
    if dims != was:
        raise CheckpointError(f"checkpoint {path} has (n_layer, n_head, n_embd) = {was[:3]}, this run {dims[:3]}")
    if old.attn != cfg.attn:
        log.warning(
            "checkpoint %s was trained with attention %r; continuing with %r. The weights do not depend "
            "on the attention backend, so nothing is converted.",
            path,
            old.attn,
            cfg.attn,
        )
    if (old.batch_size, old.accumulate) != (cfg.batch_size, cfg.accumulate):
        log.warning(
            "checkpoint %s was trained with batch_size %d x accumulate %d, this run takes %d x %d: it reads "
            "on from where that run stopped in the same order of blocks (none skipped, none read twice)",
            path,
            old.batch_size,
            old.accumulate,
            cfg.batch_size,
            cfg.accumulate,
        )
    return old


def inspect(path: Path, cfg: TrainConfig, vocab_size: int) -> dict:
    """Once the data is read: refuse a checkpoint of another vocabulary; what the run resumes from."""
    ckpt = read(path)
    step, saved = int(ckpt["global_step"]), ckpt["hyper_parameters"]
    if saved.get("vocab_size") != vocab_size:
        raise CheckpointError(f"checkpoint {path} has a vocabulary of {saved.get('vocab_size')}, this run {vocab_size}")
    return {"step": step, "attn": saved_config(ckpt).attn, "path": str(path)}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: a temporary file in the same folder, renamed into
    place when whole; on failure it is removed and the error says what is still there."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda partial: torch.save(checkpoint, partial))  # a full disk fails in torch.save
        except (OSError, RuntimeError) as err:  # torch's zip writer reports a full disk as RuntimeError
            kept = sorted(p.name for p in path.parent.glob("*.ckpt"))
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:200]
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointError(
                f"the checkpoint {path.name} could not be written ({type(err).__name__}: {reason}; {free:.0f} MiB "
                f"free there). The earlier checkpoints are intact ({', '.join(kept) or 'none yet'}): free space in "
                f"{path.parent} (or set another ckpt_dir), then run again with resume: auto to continue "
                "from the last of them."
            ) from err
