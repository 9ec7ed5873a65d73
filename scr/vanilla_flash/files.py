"""Files written whole or not at all: the one way the project writes a file a killed run could
leave half-written (checkpoints, the tokenizer, the token cache, a run's summary, its plots and its
transformers model folder).

`write_atomic(path, write)` lets `write` fill a temporary file beside `path` (same folder, so the
rename cannot cross file systems) and renames it into place once whole; if anything fails, the
temporary file is removed and `path` still holds what it held before. The temporary name,
``.<name>.partial-<pid>``, is what `vanilla_flash.training.checkpoints.prepare` clears before a run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial-"  # in the name of a file being written: `.step-000020.ckpt.partial-1234`


def partial_name(path: Path) -> Path:
    """Where `write_atomic` writes `path` before it is whole."""
    return path.with_name(f".{path.name}{PARTIAL}{os.getpid()}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(partial)` to a file beside `path`, renamed to `path` once whole."""
    path = Path(path)
    partial = partial_name(path)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_folder_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(partial)` to a folder beside `path`, put in the place of `path` once whole (a folder that
    was there is removed only after the new one is complete)."""
    path = Path(path)
    partial, old = partial_name(path), path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        write(partial)
        if path.exists():
            path.rename(old)
        partial.rename(path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`text` as UTF-8 into `path`, whole or not at all."""
    write_atomic(path, lambda partial: partial.write_text(text, encoding="utf-8"))
