"""Documents, cleaning, the split, tokenizers and packing."""

import unicodedata

import datasets
import numpy as np
import pytest
from vanilla_flash import data, datamodule

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
