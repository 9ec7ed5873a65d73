"""The training data as Lightning wants it: `WikisourceData`, a LightningDataModule.

It loads the documents (`vanilla_flash.training.data`: the Hub within a byte budget, or the shipped sample,
also as the fallback when the Hub cannot be reached), splits them by size, trains or reuses the run's
tokenizer and packs the blocks. The training order (`EndlessSampler`) is a seeded, endless sequence
of permutations, so a resumed run reads the same blocks it would have read had it never stopped;
that position and the tokenizer's fingerprint are saved in every checkpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError, DataError
from vanilla_flash.files import write_text_atomic
from vanilla_flash.training.data import (
    HUB_CONFIGS,
    HUB_DATASET,
    fingerprint,
    load_documents,
    pack,
    split,
    tokenizer,
    tokenizer_fields,
    tokens_per_word,
    train_bpe,
)

log = logging.getLogger("vanilla_flash.training.data")


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
    """Documents, tokenizer and packed blocks for a run; its state (blocks read so far, the
    tokenizer's fingerprint) is saved in every checkpoint, so a resumed run reads on where it stopped."""

    def __init__(self, cfg: TrainConfig, resuming: bool = False):
        super().__init__()
        self.cfg, self.resuming = cfg, resuming
        self.samples_seen = 0  # per rank, restored from a checkpoint
        self.resumed_step = 0  # the step of that checkpoint
        self.tokenizer = None
        self.stats: dict = {}

    def tokenizer_path(self) -> Path:
        return self.cfg.checkpoints / "tokenizer.json"

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        cfg = self.cfg
        docs, source = self._documents()
        train_docs, val_docs = split(docs, cfg.val_fraction, cfg.seed)
        if cfg.tokenizer == "bpe":
            self.tokenizer = self._trained_tokenizer(train_docs)
        else:
            self.tokenizer = tokenizer(cfg.tokenizer)
        self.train_blocks = pack(train_docs, self.tokenizer, cfg.seq_len, cfg.token_cache)
        self.val_blocks = pack(val_docs, self.tokenizer, cfg.seq_len, cfg.token_cache)
        val_text = [d["text"] for d in val_docs]
        self.stats = {
            "source": source,
            "bytes": sum(len(d["text"].encode()) for d in docs),
            "documents": {"train": len(train_docs), "val": len(val_docs)},
            "blocks": {"train": len(self.train_blocks), "val": len(self.val_blocks)},
            "tokenizer": cfg.tokenizer,
            "vocab_size": len(self.tokenizer),
            "tokenizer_fingerprint": fingerprint(self.tokenizer),
            "tokens_per_word_val": round(tokens_per_word(self.tokenizer, val_text), 3),
        }
        log.info("data: %s", self.stats)

    def _trained_tokenizer(self, train_docs: list[dict]):
        """The run's byte-level BPE: the one saved beside the checkpoints if it was trained for this
        very run (same language, data, vocabulary size, split), else a new one. A resumed run whose
        saved tokenizer was trained otherwise, or is cut short or damaged, is refused: its checkpoints'
        token ids depend on it (a run that resumes nothing trains a new one). Both files are written
        atomically."""
        path = self.tokenizer_path()
        meta = path.with_name("tokenizer.meta.json")
        wanted = tokenizer_fields(self.cfg)
        try:
            saved = json.loads(meta.read_text())
        except (OSError, ValueError):  # none yet, or cut short (written in place before it was atomic)
            saved = None
        if path.exists() and saved == wanted:
            try:
                return tokenizer("bpe", path=path)
            except DataError as err:
                damaged = f"{path} was cut short or damaged ({err.__cause__}), e.g. a session died while it was written"
                if self.resuming:
                    raise DataError(
                        f"{damaged}. The checkpoint this run resumes holds token ids of that exact tokenizer: "
                        "restore tokenizer.json from a copy, or start a new run (resume: never, or another ckpt_dir)."
                    ) from err
                log.warning("%s; no checkpoint is resumed, so nothing depends on it yet: training a new one", damaged)
        elif path.exists() and self.resuming:
            differ = {k: (saved or {}).get(k, "unrecorded") for k in wanted if (saved or {}).get(k) != wanted[k]}
            raise CheckpointError(
                f"the tokenizer saved in {path.parent} was trained with {differ}, this run asks for "
                f"{ {k: wanted[k] for k in differ} }: its checkpoints' token ids would mean other things. Resume "
                "with the values it was trained with, or start a new run (resume: never, or another ckpt_dir)."
            )
        elif path.exists():
            log.warning("the tokenizer in %s was trained for another run (%s); training a new one", path, saved)
        trained = train_bpe((d["text"] for d in train_docs), self.cfg.bpe_vocab_size, path)
        write_text_atomic(meta, json.dumps(wanted, indent=1) + "\n")
        return trained

    def _documents(self) -> tuple[list[dict], str]:
        """The run's documents and, in words, where they came from: the Hub within `max_bytes`, or
        the shipped sample, also when the Hub cannot be reached and `fallback_to_sample` allows it."""
        cfg = self.cfg
        try:
            docs = load_documents(cfg.data_source, cfg.lang, max_docs=cfg.max_docs, max_bytes=cfg.max_bytes)
            return docs, f"{HUB_DATASET} {HUB_CONFIGS[cfg.lang]}" if cfg.data_source == "hub" else "sample"
        except DataError as err:
            if cfg.data_source != "hub" or not cfg.fallback_to_sample:
                raise
            note = (
                f"the Hugging Face Hub could not be reached, so this run trains on the shipped sample instead ({err})"
            )
            log.warning(note)
            print(f"NOTE: {note}", flush=True)  # seen in a notebook cell, whatever logging is set up
            return load_documents(
                "sample", cfg.lang, max_docs=cfg.max_docs, max_bytes=cfg.max_bytes
            ), "sample (Hub unreachable)"

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        sampler = EndlessSampler(len(self.train_blocks), self.cfg.seed, self.samples_seen, rank, world)
        return DataLoader(
            Blocks(self.train_blocks),
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            drop_last=True,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Blocks(self.val_blocks), batch_size=self.cfg.batch_size, shuffle=False)

    def state_dict(self) -> dict:
        """Blocks read so far (per rank): those of the run resumed from, then this run's steps at its own
        batch size (a run may resume with another batch_size or accumulate and read on exactly)."""
        step = self.trainer.global_step if self.trainer else 0
        seen = self.samples_seen + (step - self.resumed_step) * self.cfg.accumulate * self.cfg.batch_size
        return {"samples_seen": seen, "step": step, "tokenizer_fingerprint": self.stats.get("tokenizer_fingerprint")}

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
        # checkpoints written before "step" was saved were all read at the batch size of their own run
        per_step = self.cfg.accumulate * self.cfg.batch_size
        self.resumed_step = state.get("step", self.samples_seen // per_step)
