"""Documents, cleaning, the split, tokenizers and packing."""

import errno
import json
import re
import unicodedata

import datasets
import numpy as np
import pytest
from vanilla_flash.training import data, datamodule

VI = "Trăm năm trong cõi người ta, chữ tài chữ mệnh khéo là ghét nhau. Đường đi khó, không khó vì ngăn sông cách núi."


def test_sample_loads_through_datasets_with_the_hub_columns():
    docs = data.load_documents("sample", "vi")
    assert len(docs) == 10 and set(docs[0]) == {"id", "url", "title", "text"}
    assert all(unicodedata.is_normalized("NFC", d["text"]) for d in docs)
    assert len(data.load_documents("sample", "en")) == 3


def test_hub_streaming_stops_at_the_budget(monkeypatch):
    """The hub path streams: documents are read one by one and reading stops at the budget."""
    read = []

    def rows():
        for i in range(10_000):
            read.append(i)
            yield {"id": str(i), "url": f"u{i}", "title": f"t{i}", "text": VI * 5}

    calls = {}

    def fake_load(name, config, split, streaming):
        calls.update(name=name, config=config, streaming=streaming)
        return rows()

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    docs = data.load_documents("hub", "vi", max_docs=7)
    assert len(docs) == 7 and len(read) == 7
    assert calls == {"name": "wikimedia/wikisource", "config": "20231201.vi", "streaming": True}
    read.clear()
    by_bytes = data.load_documents("hub", "en", max_bytes=3000)
    assert sum(len(d["text"].encode()) for d in by_bytes) >= 3000 and len(read) == len(by_bytes) < 10


def test_offline_without_a_cache_names_the_way_out(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wikimedia/wikisource' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.DataError, match="HF_HUB_OFFLINE=1 is set and there is no cached copy.*'sample'"):
        data.load_documents("hub", "vi")
    with pytest.raises(data.DataError, match="not set up"):
        data.load_documents("hub", "fr")


def test_cleaning():
    eth = "\u00d0\u01b0\u1eddng \u00f0i"  # Icelandic eth where Vietnamese has Đ/đ
    assert data.clean(eth * 50).startswith("Đường đi")
    decomposed = unicodedata.normalize("NFD", VI * 3)
    assert data.clean(decomposed) == unicodedata.normalize("NFC", VI * 3)
    assert data.clean("#REDIRECT [[Trang khác]]" + " x" * 200) == ""
    assert data.clean("ngắn quá") == ""
    assert data.clean((VI + "   \n\n\n\n\n") * 3).count("\n\n\n") == 0


def test_split_is_by_document_and_seeded():
    docs = [{"id": str(i), "text": "x"} for i in range(40)]
    train, val = data.split(docs, 0.1, seed=3)
    assert len(val) == 4 and not {d["id"] for d in train} & {d["id"] for d in val}
    assert data.split(list(reversed(docs)), 0.1, seed=3)[1] == sorted(val, key=lambda d: -int(d["id"]))
    assert data.split(docs, 0.1, seed=4)[1] != val


@pytest.mark.parametrize("kind", ["gpt2", "bpe"])
def test_tokenizers_round_trip_vietnamese_exactly(kind, tmp_path):
    if kind == "gpt2":
        tok = data.tokenizer("gpt2")
        assert tok("Hello world")["input_ids"] == [15496, 995]  # GPT-2's own ids
    else:
        tok = data.train_bpe([d["text"] for d in data.load_documents("sample", "vi")], 1000, tmp_path / "t.json")
        assert len(tok) == 1000
    for text in (VI, "Nguyễn Du (1765–1820)\n\n  «Truyện Kiều»\t…", data.load_documents("sample", "vi")[0]["text"]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text


def test_a_trained_bpe_needs_far_fewer_tokens_on_vietnamese():
    result = data.compare_tokenizers("vi", vocab_size=4096)
    assert result["tokens_per_word"]["gpt2"] > 3.5
    assert result["ratio"] > 2.5


def test_packing_joins_documents_with_eos_and_caches(tmp_path):
    tok = data.tokenizer("gpt2")
    docs = [{"id": "a", "text": VI}, {"id": "b", "text": VI[::-1]}]
    blocks = data.pack(docs, tok, 8, tmp_path)
    flat = blocks.reshape(-1)
    assert blocks.shape[1] == 8 and blocks.dtype == np.uint16
    assert 50256 in flat  # EOS between documents
    assert len(list(tmp_path.glob("blocks-*.npy"))) == 1
    assert (data.pack(docs, tok, 8, tmp_path) == blocks).all()
    with pytest.raises(data.DataError, match="do not fill one block"):
        data.pack(docs[:1], tok, 4096)


def test_endless_sampler_is_a_pure_function_of_position():
    full = datamodule.EndlessSampler(10, seed=3)
    first_25 = [i for _, i in zip(range(25), full, strict=False)]
    assert sorted(first_25[:10]) == list(range(10))  # each epoch is a permutation
    later = datamodule.EndlessSampler(10, seed=3, start=17)
    assert [i for _, i in zip(range(8), later, strict=False)] == first_25[17:25]
    rank0, rank1 = datamodule.EndlessSampler(10, 3, 0, 0, 2), datamodule.EndlessSampler(10, 3, 0, 1, 2)
    evens = [i for _, i in zip(range(5), rank0, strict=False)]
    odds = [i for _, i in zip(range(5), rank1, strict=False)]
    assert evens == first_25[0:10:2] and odds == first_25[1:10:2]


def test_decode_keeps_whole_characters_only():
    """A sample that stops inside a multi-byte character (Vietnamese letters are 2-3 bytes in UTF-8)
    shows U+FFFD through `tok.decode`; `data.decode` keeps what is whole."""
    tok = data.tokenizer("gpt2")
    ids = tok(VI)["input_ids"]
    assert data.decode(tok, ids) == tok.decode(ids) == VI
    cut = [*ids, tok(" ữ")["input_ids"][0]]  # the first byte-token of a 3-byte letter, alone
    assert "\ufffd" in tok.decode(cut)
    assert data.decode(tok, cut) == VI + " "
    eos = tok.convert_tokens_to_ids(data.EOS)
    assert data.decode(tok, [eos, *ids, eos]) == VI  # special tokens are left out


def test_an_unreachable_hub_falls_back_to_the_sample_and_says_so(tmp_path, monkeypatch, capsys):
    from vanilla_flash.config import TrainConfig

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(datasets, "load_dataset", lambda name, *a, **k: unreachable() if name != "json" else
                        REAL_LOAD(name, *a, **k))  # fmt: skip
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), data_source="hub", seq_len=32)
    dm = datamodule.WikisourceData(cfg)
    dm.setup("fit")
    assert dm.stats["source"] == "sample (Hub unreachable)" and dm.stats["documents"]["train"] > 0
    assert "NOTE: the Hugging Face Hub could not be reached" in capsys.readouterr().out
    strict = datamodule.WikisourceData(TrainConfig(run_dir=str(tmp_path / "run2"), data_source="hub",
                                             fallback_to_sample=False))  # fmt: skip
    with pytest.raises(data.DataError, match="cannot load wikimedia/wikisource"):
        strict.setup("fit")
    sample = datamodule.WikisourceData(TrainConfig(run_dir=str(tmp_path / "run3"), seq_len=32))
    sample.setup("fit")
    assert sample.stats["source"] == "sample"


REAL_LOAD = datasets.load_dataset


# --- a bad data file or a damaged tokenizer is named, with the line or the file and the fix


def _sample_with(folder, number: int, bad: bytes):
    """The shipped Vietnamese sample written to `folder`, its line `number` replaced by `bad`."""
    lines = (data.SAMPLE_DIR / "vi.jsonl").read_bytes().splitlines()
    lines[number - 1] = bad
    (folder / "vi.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return folder


TEXT = ("x " * 150).encode()
COLUMNS = "; each line must be one JSON object with the columns id, url, title, text$"
BAD_LINES = {
    "latin-1": (3, b'{"id": "3", "text": "caf\xe9 ' + TEXT + b'"}', "byte 0xe9 at column 25 is not UTF-8; save"),
    "no text": (5, b'{"id": "5", "url": "", "title": "t"}', r"no 'text' field \(a string\)" + COLUMNS),
    "null text": (5, b'{"id": "5", "text": null}', r"no 'text' field \(a string\)" + COLUMNS),
    "number text": (2, b'{"id": "2", "text": 12}', r"no 'text' field \(a string\)" + COLUMNS),
    "not JSON": (4, b'{"id": "4", "text": "' + TEXT, r"not valid JSON \(Unterminated string .*: column 21\)" + COLUMNS),
    "not an object": (6, b'["6", "' + TEXT + b'"]', "not a JSON object" + COLUMNS),
    "no id": (7, b'{"url": "", "title": "t", "text": "' + TEXT + b'"}', "no 'id' field" + COLUMNS),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_of_the_sample_is_named_with_its_number_and_the_fix(tmp_path, case):
    number, bad, message = BAD_LINES[case]
    folder = _sample_with(tmp_path, number, bad)
    with pytest.raises(data.DataError, match=f"^{re.escape(str(folder / 'vi.jsonl'))} line {number}: {message}"):
        data.load_documents("sample", "vi", sample_dir=folder)


def test_the_way_to_restore_the_shipped_sample_is_named_only_for_it(tmp_path, monkeypatch):
    path = _sample_with(tmp_path, 2, b'{"id": "2", "text": "\xff"}') / "vi.jsonl"
    fix = "byte 0xff at column 22 is not UTF-8; save the file as UTF-8"
    with pytest.raises(data.DataError) as err:
        data.load_documents("sample", "vi", sample_dir=tmp_path)
    assert str(err.value) == f"{path} line 2: {fix}"
    monkeypatch.setattr(data, "SAMPLE_DIR", tmp_path)  # as if it were the shipped sample
    with pytest.raises(data.DataError) as err:
        data.load_documents("sample", "vi")
    assert str(err.value) == f"{path} line 2: {fix} (restore the shipped one with `git checkout data/`)"
    monkeypatch.undo()
    data.check_json_lines(data.SAMPLE_DIR / "vi.jsonl")  # the shipped files pass
    data.check_json_lines(data.SAMPLE_DIR / "en.jsonl")


def test_hub_rows_without_text_are_skipped_not_a_crash(monkeypatch, caplog):
    rows = [{"id": "0", "text": None}, {"id": "1"}, {"id": None, "text": VI * 5}, {"id": "3", "text": VI * 5}]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split, streaming: iter(rows))
    docs = data.load_documents("hub", "vi")
    assert [d["id"] for d in docs] == ["3"]
    assert "skipped 3 row(s) of hub (vi) without a 'text' string or an 'id'" in caplog.text


DAMAGED = {
    "truncated": lambda whole: whole[: len(whole) // 2],
    "latin-1": lambda whole: whole.replace(b"{", b"\xe9", 1),
    "empty": lambda whole: b"",
}


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_tokenizer_file_is_named(tmp_path, damage):
    path = tmp_path / "tokenizer.json"
    data.train_bpe([VI * 20], 300, path)
    path.write_bytes(DAMAGED[damage](path.read_bytes()))
    with pytest.raises(
        data.DataError, match=f"^{re.escape(str(path))} cannot be read as a tokenizer .*: it was cut short or damaged"
    ):
        data.tokenizer("bpe", path=path)


def _bpe_run(tmp_path, **kw):
    from vanilla_flash.config import TrainConfig

    values = {"run_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), "tokenizer": "bpe"}
    return TrainConfig(**{**values, "bpe_vocab_size": 300, "seq_len": 32, **kw})


def test_a_damaged_run_tokenizer_is_trained_anew_unless_a_checkpoint_is_resumed(tmp_path, caplog):
    cfg = _bpe_run(tmp_path)
    first = datamodule.WikisourceData(cfg)
    first.setup()
    path = first.tokenizer_path()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])  # a session died while it was written
    with pytest.raises(data.DataError) as err:
        datamodule.WikisourceData(cfg, resuming=True).setup()
    assert str(err.value).startswith(f"{path} was cut short or damaged (EOF while parsing")
    assert str(err.value).endswith(
        "The checkpoint this run resumes holds token ids of that exact tokenizer: restore tokenizer.json from a "
        "copy, or start a new run (resume: never, or another ckpt_dir)."
    )
    again = datamodule.WikisourceData(cfg)
    again.setup()  # not resuming: nothing depends on it yet, so a new one is trained
    assert "no checkpoint is resumed, so nothing depends on it yet: training a new one" in caplog.text
    assert path.read_bytes() == whole and again.stats["tokenizer_fingerprint"] == first.stats["tokenizer_fingerprint"]
    meta = path.with_name("tokenizer.meta.json")
    meta.write_text(meta.read_text()[:10])  # cut short too: trained anew, not a JSONDecodeError
    datamodule.WikisourceData(cfg).setup()
    assert json.loads(meta.read_text()) == data.tokenizer_fields(cfg)


def test_the_tokenizer_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write cut short (a full disk here; a killed session alike) leaves the previous file whole."""
    from pathlib import Path

    from tokenizers import ByteLevelBPETokenizer

    datamodule.WikisourceData(_bpe_run(tmp_path)).setup()
    folder = tmp_path / "run/checkpoints"
    names = ("tokenizer.json", "tokenizer.meta.json")
    before = {name: (folder / name).read_bytes() for name in names}

    def cut_short(path):
        Path(path).write_bytes(b'{"version": "1.0", "trunc')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ByteLevelBPETokenizer, "save", lambda self, path, pretty=True: cut_short(path))
    with pytest.raises(OSError, match="No space left"):
        datamodule.WikisourceData(_bpe_run(tmp_path, bpe_vocab_size=400)).setup()
    assert {name: (folder / name).read_bytes() for name in names} == before
    monkeypatch.undo()
    real_write_text = Path.write_text

    def meta_cut_short(self, text, *args, **kwargs):
        if "tokenizer.meta.json" in self.name:  # the file itself, or a temporary one beside it
            cut_short(self)
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", meta_cut_short)
    with pytest.raises(OSError, match="No space left"):
        datamodule.WikisourceData(_bpe_run(tmp_path, bpe_vocab_size=400)).setup()
    assert (folder / "tokenizer.meta.json").read_bytes() == before["tokenizer.meta.json"]
    assert not list(folder.glob("*partial*"))
