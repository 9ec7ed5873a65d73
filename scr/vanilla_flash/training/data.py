"""Wikisource text, tokenized and packed into training blocks.

- `load_documents()` reads `wikimedia/wikisource` from the Hugging Face hub (streamed, cut at a
  document or byte budget, so a Colab T4 downloads only what the run needs) or the sample shipped in
  `data/wikisource-sample/` through the same `datasets` code path and columns (`id`, `url`, `title`,
  `text`); `check_json_lines()` names the first bad line of the sample before `datasets` reads it.
- `clean()` is the light cleaning the corpus needs; `split()` puts each document in train or
  validation by a seeded hash of its id, never both.
- `tokenizer()` gives GPT-2's byte-level BPE from the files in `data/gpt2-bpe/` (no network) or a
  byte-level BPE trained on the training split (`train_bpe()`).
- `pack()` joins documents with EOS and cuts blocks of `seq_len` tokens, cached on disk under a key
  made of the data, the tokenizer and `seq_len`, so a second run skips tokenisation.
`vanilla_flash.training.datamodule` does all of that for a training run, as a LightningDataModule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vanilla_flash.config import WIKISOURCE_CONFIGS, TrainConfig
from vanilla_flash.errors import DataError
from vanilla_flash.files import write_atomic, write_text_atomic

log = logging.getLogger(__name__)

REPO_DATA = Path(__file__).resolve().parents[3] / "data"
SAMPLE_DIR = REPO_DATA / "wikisource-sample"
GPT2_BPE_DIR = REPO_DATA / "gpt2-bpe"
HUB_DATASET = "wikimedia/wikisource"
HUB_CONFIGS = WIKISOURCE_CONFIGS
EOS = "<|endoftext|>"


def _data_dir(path: str | os.PathLike | None, default: Path, what: str) -> Path:
    path = Path(path) if path else default
    if not path.exists():
        raise DataError(
            f"{what} not found at {path}. It ships with the repository (data/); from a notebook outside "
            "the repository, clone it first or pass its path."
        )
    return path


# ---------------------------------------------------------------------------------------------
# Documents


def load_documents(
    source: str = "sample",
    lang: str = "vi",
    *,
    max_docs: int | None = None,
    max_bytes: int | None = None,
    sample_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Documents as dicts with `id`, `url`, `title`, `text`, cleaned, empty ones dropped.

    `source="hub"` streams `wikimedia/wikisource` (config `20231201.{lang}`) and stops at `max_docs`
    documents or `max_bytes` bytes of text; `source="sample"` reads the shipped sample. Offline
    (HF_HUB_OFFLINE=1) without a cached copy of the hub data set, a `DataError` says what to do.
    """
    import datasets

    if lang not in HUB_CONFIGS:
        raise DataError(f"language {lang!r} is not set up; choose one of: {', '.join(HUB_CONFIGS)}")
    if source == "sample":
        path = _data_dir(sample_dir, SAMPLE_DIR, "the Wikisource sample") / f"{lang}.jsonl"
        if not path.is_file() or path.stat().st_size == 0:
            raise DataError(
                f"{path} is missing or empty: it should hold one JSON document per line with the "
                "columns id, url, title, text (restore it with `git checkout data/`)"
            )
        check_json_lines(path)
        try:
            rows = datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as err:  # datasets reads a file it cannot parse as a bare error
            raise DataError(
                f"{path} cannot be read as JSON lines with the columns id, url, title, text "
                f"({type(err).__name__}: {err})"
            ) from err
    elif source == "hub":
        try:
            rows = datasets.load_dataset(HUB_DATASET, HUB_CONFIGS[lang], split="train", streaming=True)
        except Exception as err:
            raise DataError(_offline_hint(lang, err)) from err
    else:
        raise DataError(f"data source {source!r} is not one of: sample, hub")
    docs, total, skipped = [], 0, 0
    try:
        for row in rows:
            if not isinstance(row.get("text"), str) or row.get("id") is None:
                skipped += 1  # a Hub row without text or id (the sample's rows are checked before loading)
                continue
            text = clean(row["text"])
            if not text:
                continue
            docs.append({"id": str(row["id"]), "url": row.get("url", ""), "title": row.get("title", ""), "text": text})
            total += len(text.encode())
            if (max_docs and len(docs) >= max_docs) or (max_bytes and total >= max_bytes):
                break
    except Exception as err:  # streaming fails on first read when there is no network
        if source == "hub":
            raise DataError(_offline_hint(lang, err)) from err
        raise
    if skipped:
        log.warning("skipped %d row(s) of %s (%s) without a 'text' string or an 'id'", skipped, source, lang)
    if not docs:
        raise DataError(f"no usable documents in {source} ({lang})")
    log.info("loaded %d documents (%.1f MB) from %s/%s", len(docs), total / 1e6, source, lang)
    return docs


def check_json_lines(path: Path) -> None:
    """A JSON-lines data file, checked line by line before `datasets` reads it: each line UTF-8, one
    JSON object, with a string `text` and an `id`. The first bad line is named with its number and the fix."""
    columns = "each line must be one JSON object with the columns id, url, title, text"
    shipped = path.resolve().is_relative_to(SAMPLE_DIR)
    restore = " (restore the shipped one with `git checkout data/`)" if shipped else ""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            where = f"{path} line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                column = len(raw[: err.start].decode("utf-8")) + 1
                raise DataError(
                    f"{where}: byte 0x{raw[err.start]:02x} at column {column} is not UTF-8; save the file as UTF-8"
                    f"{restore}"
                ) from err
            if not line.strip():
                continue
            try:
                row = json.loads(line.strip())
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg}: column {err.colno}); {columns}") from err
            if not isinstance(row, dict):
                raise DataError(f"{where}: not a JSON object; {columns}")
            if not isinstance(row.get("text"), str):
                raise DataError(f"{where}: no 'text' field (a string); {columns}")
            if row.get("id") in (None, ""):
                raise DataError(f"{where}: no 'id' field; {columns}")


def _offline_hint(lang: str, err: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    how = "HF_HUB_OFFLINE=1 is set and there is no cached copy" if offline else "the hub could not be reached"
    return (
        f"cannot load {HUB_DATASET} ({HUB_CONFIGS[lang]}): {how} ({type(err).__name__}: {err}). "
        "Use data source 'sample' (the text shipped in data/wikisource-sample), or run once with network "
        "access so `datasets` caches what the run needs."
    )


_BOILERPLATE = re.compile(r"^\s*(#REDIRECT|#ĐỔI|{{|Trang này)", re.IGNORECASE)


def clean(text: str, min_chars: int = 200) -> str:
    """Unicode NFC; U+00D0/U+00F0 (Icelandic eth, which scraped Vietnamese uses for Đ/đ) become
    U+0110/U+0111; trailing spaces and runs of blank lines trimmed; redirects, templates and pages
    under `min_chars` characters dropped (returned as "")."""
    text = unicodedata.normalize("NFC", text).replace("\u00d0", "\u0110").replace("\u00f0", "\u0111")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if len(text) < min_chars or _BOILERPLATE.match(text):
        return ""
    return text


def split(docs: list[dict], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Train/validation by size: `val_fraction` of the text's bytes goes to validation, so one long
    document cannot make most of it. Documents are taken in the order a seeded hash of their ids
    gives (the split does not depend on the order they came in); the one that crosses the budget is
    cut at a line break, its first part to validation (id `<id>#val`), the rest to training
    (`<id>#train`). No text is in both sets, and each gets some."""

    def score(doc):
        return hashlib.sha256(f"{seed}:{doc['id']}".encode()).hexdigest()

    budget = val_fraction * sum(len(d["text"].encode()) for d in docs)
    whole, cut, taken = set(), {}, 0  # ids wholly in validation; id -> (validation part, training part)
    for doc in sorted(docs, key=score):
        size = len(doc["text"].encode())
        if taken + size <= budget:
            whole.add(doc["id"])
            taken += size
            continue
        head, tail = _cut(doc["text"], int(budget - taken))
        if head and tail:
            cut[doc["id"]] = (
                {**doc, "id": f"{doc['id']}#val", "text": head},
                {**doc, "id": f"{doc['id']}#train", "text": tail},
            )
        break
    val = [cut[d["id"]][0] if d["id"] in cut else d for d in docs if d["id"] in whole or d["id"] in cut]
    train = [cut[d["id"]][1] if d["id"] in cut else d for d in docs if d["id"] not in whole]
    if not val or not train:
        raise DataError(
            f"{len(docs)} document(s) cannot be split into training and validation text; add data "
            "(max_docs, max_bytes) or change val_fraction"
        )
    return train, val


def _cut(text: str, head_bytes: int) -> tuple[str, str]:
    """`text` cut at the first line break after its first `head_bytes` bytes (a space if it has none)."""
    at = len(text.encode()[:head_bytes].decode("utf-8", errors="ignore"))
    for mark in ("\n", " "):
        found = text.find(mark, at)
        if found != -1:
            return text[:found].strip(), text[found:].strip()
    return text, ""


# ---------------------------------------------------------------------------------------------
# Tokenizers


def tokenizer(kind: str = "gpt2", *, path: str | os.PathLike | None = None):
    """A `PreTrainedTokenizerFast`: `gpt2` from the shipped BPE files, or a saved trained `bpe`
    (`path` to its tokenizer.json)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    if kind == "gpt2":
        bpe = _data_dir(path, GPT2_BPE_DIR, "GPT-2's BPE files")
        # GPT-2's byte-level BPE: its vocabulary and merges with the byte-level pre-tokenizer and decoder
        backend = ByteLevelBPETokenizer.from_file(str(bpe / "encoder.json"), str(bpe / "vocab.bpe"))._tokenizer
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, bos_token=EOS, unk_token=EOS)
    elif kind == "bpe":
        if not path or not Path(path).exists():
            raise DataError(f"no trained tokenizer at {path}; train one with `train_bpe()` first")
        try:
            tok = PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token=EOS, bos_token=EOS, unk_token=EOS)
        except Exception as err:  # tokenizers reads a damaged file as a bare Exception
            raise DataError(
                f"{path} cannot be read as a tokenizer ({err}): it was cut short or damaged, e.g. a session died "
                "while it was written. Delete it and train a new one (`train_bpe()`, or a run that does not resume); "
                "a run that resumes checkpoints needs this exact file back, from a copy."
            ) from err
    else:
        raise DataError(f"tokenizer {kind!r} is not one of: gpt2, bpe")
    tok.model_max_length = 10**9  # we pack documents ourselves; silence the 1024-token warning
    tok.clean_up_tokenization_spaces = False
    return tok


def train_bpe(texts: Iterable[str], vocab_size: int, path: str | os.PathLike):
    """Train a byte-level BPE on `texts` with `tokenizers`, save it to `path`, return it loaded."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda partial: bpe.save(str(partial)))
    return tokenizer("bpe", path=path)


def fingerprint(tok) -> str:
    """A short hash of a tokenizer's vocabulary and merges: equal fingerprints, equal token ids."""
    return hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def _byte_level_alphabet() -> dict[str, int]:
    """The character that stands for each byte in a byte-level BPE's tokens, inverted (char -> byte):
    bytes that print as themselves (! to ~, ¡ to ¬, ® to ÿ) are their own character; the other 68
    bytes (controls, space, soft hyphen) are U+0100 onwards, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {chr(b): b for b in printable}
    others = [b for b in range(256) if chr(b) not in alphabet]
    alphabet.update({chr(256 + i): b for i, b in enumerate(others)})
    return alphabet


def decode(tok, ids) -> str:
    """Token ids to text, keeping every character that is whole. A sampled sequence can end inside a
    multi-byte UTF-8 character (Vietnamese letters are 2-3 bytes) or hold bytes that form none;
    `tok.decode` shows those as U+FFFD, this leaves them out."""
    alphabet = _byte_level_alphabet()
    special = set(tok.all_special_ids)
    data = bytearray()
    for token in tok.convert_ids_to_tokens([int(i) for i in ids if int(i) not in special]):
        data.extend(alphabet[c] for c in token if c in alphabet)
    return data.decode("utf-8", errors="ignore")


def tokenizer_fields(cfg: TrainConfig) -> dict:
    """What a trained tokenizer depends on: the same values give the same token ids."""
    return {
        "tokenizer": cfg.tokenizer,
        "bpe_vocab_size": cfg.bpe_vocab_size,
        "lang": cfg.lang,
        "data_source": cfg.data_source,
        "max_docs": cfg.max_docs,
        "max_bytes": cfg.max_bytes,
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
    }


def tokens_per_word(tok, texts: Iterable[str]) -> float:
    words = tokens = 0
    for text in texts:
        words += len(text.split())
        tokens += len(tok(text, add_special_tokens=False)["input_ids"])
    return tokens / max(words, 1)


# ---------------------------------------------------------------------------------------------
# Packing, with an on-disk cache


def pack(docs: list[dict], tok, seq_len: int, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Documents joined with EOS and cut into (n_blocks, seq_len) token blocks (the tail that does
    not fill a block is dropped). Cached as .npy under a key of documents, tokenizer and seq_len."""
    key = hashlib.sha256()
    for doc in docs:
        key.update(doc["id"].encode() + b"\0" + hashlib.sha256(doc["text"].encode()).digest())
    key.update(f"{fingerprint(tok)}:{seq_len}".encode())
    cache = Path(cache_dir) / f"blocks-{key.hexdigest()[:20]}.npy" if cache_dir else None
    if cache and cache.exists():
        log.info("token cache hit: %s", cache)
        return np.load(cache)
    eos = tok.convert_tokens_to_ids(EOS)
    ids = []
    for doc in docs:
        ids.extend(tok(doc["text"], add_special_tokens=False)["input_ids"])
        ids.append(eos)
    dtype = np.uint16 if len(tok) <= 2**16 else np.int32
    n_blocks = len(ids) // seq_len
    if n_blocks == 0:
        raise DataError(f"{len(ids)} tokens do not fill one block of {seq_len}; use more data or a shorter seq_len")
    blocks = np.asarray(ids[: n_blocks * seq_len], dtype=dtype).reshape(n_blocks, seq_len)
    if cache:
        try:  # the cache saves time only: a folder that cannot take it does not stop the run
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, lambda partial: _save_npy(partial, blocks))
            facts = {"documents": len(docs), "tokens": len(ids), "seq_len": seq_len, "tokenizer": fingerprint(tok)}
            write_text_atomic(cache.with_suffix(".json"), json.dumps(facts))
        except OSError as err:
            log.warning("the token cache %s could not be written (%s); going on without it", cache, err)
    return blocks


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as f:  # a file object: np.save adds ".npy" to a name that does not end in it
        np.save(f, array)


def compare_tokenizers(lang: str = "vi", vocab_size: int = 4096, seed: int = 1234, source: str = "sample") -> dict:
    """Tokens per word on the validation documents: GPT-2's BPE against a byte-level BPE of
    `vocab_size` trained on the training documents."""
    import tempfile

    train_docs, val_docs = split(load_documents(source, lang), 0.1, seed)
    val = [d["text"] for d in val_docs]
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_bpe((d["text"] for d in train_docs), vocab_size, Path(tmp) / "tokenizer.json")
    gpt2_tpw = tokens_per_word(tokenizer("gpt2"), val)
    trained_tpw = tokens_per_word(trained, val)
    return {
        "lang": lang,
        "val_documents": [d["title"] for d in val_docs],
        "val_words": sum(len(t.split()) for t in val),
        "tokens_per_word": {"gpt2": gpt2_tpw, f"trained bpe {vocab_size}": trained_tpw},
        "ratio": gpt2_tpw / trained_tpw,
    }
