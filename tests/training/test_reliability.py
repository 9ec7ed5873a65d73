"""Training never loses or mixes up a run, and every bad input is refused by name before any work.

Each test is one of the cases tried as a new user would (tiny CPU runs on the shipped sample), and
fails on the code as it was before the fix: a run restored from an older checkpoint, a stale
tokenizer, a run with nothing to do that rewrote its summary, a checkpoint write that left partial
files or lost work, parameters checked only once the data had been read.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import checkpoint_step as step
from conftest import refuse_writes_in
from conftest import tiny_run as tiny
from vanilla_flash import cli, notebook
from vanilla_flash.attention import registry as attention
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError, ConfigError, DataError
from vanilla_flash.training import checkpoints, data
from vanilla_flash.training.run import train

ROOT = Path(__file__).resolve().parents[2]


# --- 1-4: silent loss or mix-up


def test_resume_auto_continues_the_newest_run_and_never_makes_v1_files(tmp_path):
    train(tiny(tmp_path, resume="never", max_steps=10))  # run A
    train(tiny(tmp_path, resume="never", max_steps=20, ckpt_every=10))  # run B, same folder
    folder = tmp_path / "run/checkpoints"
    assert not list(folder.glob("*-v*.ckpt"))
    assert step(folder / "last.ckpt") == 20  # B's, not A's
    (aside,) = folder.glob("replaced-*")  # A's files, moved, not deleted
    assert step(aside / "last.ckpt") == 10 and (aside / "tokenizer.json").exists()
    summary = train(tiny(tmp_path, resume="auto", max_steps=30, ckpt_every=10))  # run C
    assert summary["resumed_from"]["step"] == 20 and summary["steps"] == 30


def test_a_stale_tokenizer_is_never_reused(tmp_path):
    first = train(tiny(tmp_path, resume="never"))
    second = train(tiny(tmp_path, resume="never", bpe_vocab_size=400))
    assert first["data"]["vocab_size"] == 300 and second["data"]["vocab_size"] == 400
    with pytest.raises(CheckpointError, match="lang"):  # resuming an English run on Vietnamese text
        train(tiny(tmp_path, resume="auto", lang="en", max_steps=20, bpe_vocab_size=400))
    with pytest.raises(CheckpointError, match="bpe_vocab_size"):
        train(tiny(tmp_path, resume="auto", max_steps=20, bpe_vocab_size=500))


def test_a_run_with_nothing_to_do_says_so_and_changes_nothing(tmp_path, capsys):
    train(tiny(tmp_path, max_steps=10))
    summary_file = tmp_path / "run/summary.json"
    before = summary_file.read_text(), summary_file.stat().st_mtime_ns
    result = train(tiny(tmp_path, max_steps=5))
    assert "nothing to train" in capsys.readouterr().out and "nothing to train" in result["note"]
    assert (summary_file.read_text(), summary_file.stat().st_mtime_ns) == before
    with pytest.raises(ConfigError, match="attn: 'flash_attn_2' cannot run here"):  # checked before any work
        train(tiny(tmp_path, max_steps=20, attn="flash_attn_2"))
    assert (summary_file.read_text(), summary_file.stat().st_mtime_ns) == before


def test_a_folder_that_cannot_take_a_checkpoint_is_refused_before_training(tmp_path, monkeypatch):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    if os.access(readonly, os.W_OK):  # root writes anywhere: make the write itself fail instead
        refuse_writes_in(monkeypatch, readonly)
    with pytest.raises(CheckpointError, match="cannot write checkpoints to .*nothing was trained"):
        train(tiny(tmp_path, ckpt_dir=str(readonly)))
    assert not (tmp_path / "run/logs").exists()

    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    with pytest.raises(CheckpointError, match="MiB free.*nothing was trained"):
        train(tiny(tmp_path))


def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_nothing_partial(tmp_path, monkeypatch):
    real_save = torch.save

    def disk_full_at_step_20(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == 20:
            with open(f, "wb") as partial:  # half a file, then the disk is full
                partial.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_step_20)
    with pytest.raises(CheckpointError, match="could not be written.*intact.*resume: auto"):
        train(tiny(tmp_path, max_steps=30, ckpt_every=10))
    folder = tmp_path / "run/checkpoints"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".ckpt" or ".partial" in p.name) == [
        "last.ckpt", "step-000010.ckpt"]  # fmt: skip
    assert step(folder / "last.ckpt") == 10
    monkeypatch.setattr(torch, "save", real_save)
    assert train(tiny(tmp_path, max_steps=20, ckpt_every=10))["resumed_from"]["step"] == 10


KILLED_WHILE_SAVING = """
import os, sys, time, torch
from vanilla_flash.config import TrainConfig
from vanilla_flash.training.run import train

real_save = torch.save
def slow_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("global_step") == 20:
        with open(f, "wb") as partial:
            partial.write(b"\\0" * 1000)
            partial.flush()
            open(sys.argv[2], "w").write(str(f))  # tell the test: killed now, it is mid-write
            time.sleep(600)
    return real_save(obj, f, *args, **kwargs)
torch.save = slow_save
train(TrainConfig(**__import__("json").loads(sys.argv[1])))
"""


def test_sigkill_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path):
    cfg = tiny(tmp_path, max_steps=30, ckpt_every=10)
    values = {k: v for k, v in cfg.__dict__.items() if k != "betas"}
    marker = tmp_path / "writing"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_SAVING, json.dumps(values), str(marker)])
    deadline = time.time() + 300
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the run never reached its second checkpoint"
    child.send_signal(signal.SIGKILL)
    child.wait()
    folder = tmp_path / "run/checkpoints"
    partial = Path(marker.read_text())
    assert partial.exists() and ".partial-" in partial.name  # the half-written file is not a checkpoint
    assert step(folder / "last.ckpt") == 10
    summary = train(tiny(tmp_path, max_steps=30, ckpt_every=10))
    assert summary["resumed_from"]["step"] == 10 and summary["steps"] == 30
    assert not list(folder.glob("*.partial-*")) and not list(folder.glob("*-v*.ckpt"))


# --- 5-9: parameters checked at once, naming the field


def test_numbers_yaml_reads_as_text_are_numbers(tmp_path):
    (tmp_path / "run.yaml").write_text("lr: 1e-3\nmin_lr: 1e-4\nbetas: [0.9, 95e-2]\n")
    cfg = TrainConfig.from_yaml(tmp_path / "run.yaml")
    assert cfg.lr == 1e-3 and cfg.min_lr == 1e-4 and cfg.betas == (0.9, 0.95)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": "abc"}, "batch_size: 'abc' is not a whole number"),
        ({"betas": 0.9}, "betas: 0.9 is not a pair of numbers"),
        ({"accumulate": 0}, "accumulate: 0 is not allowed; a whole number, at least 1"),
        ({"max_steps": -1}, "max_steps: -1 is not allowed"),
        ({"seq_len": 1}, "seq_len: 1 is not allowed; at least 2"),
        ({"lr": "fast"}, "lr: 'fast' is not a number"),
        ({"val_fraction": 1.5}, "val_fraction: 1.5 is not allowed"),
        ({"lang": "fr"}, "lang: 'fr' is not allowed; choose one of: vi, en"),
        ({"resume": "yes"}, "resume: 'yes' is not allowed"),
        ({"n_embd": 100, "n_head": 12}, "n_embd: 100 does not divide by n_head"),
    ],
)
def test_bad_values_are_refused_by_name_before_anything_runs(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig.from_dict(values)


def test_an_unknown_attention_backend_is_refused_by_name_wherever_a_config_enters(tmp_path, capsys):
    """The config knows no backends (it imports nothing of the package): the registry checks the name,
    before any work, for the command line, the notebooks and the run itself."""
    message = "attn: 'flash' is not allowed; choose one of: eager"
    with pytest.raises(ConfigError, match=message):
        attention.check_name("flash")
    with pytest.raises(ConfigError, match=message):
        train(tiny(tmp_path, attn="flash"))
    assert not (tmp_path / "run").exists()
    assert cli.main(["train", "--set", "attn=flash", f"run_dir={tmp_path / 'cli'}"]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ConfigError, match=message):
        notebook.checked_params({**notebook.params("cpu"), "train": {"attn": "flash"}})


def test_an_empty_data_file_is_named(tmp_path):
    (tmp_path / "vi.jsonl").write_text("")
    with pytest.raises(DataError, match="vi.jsonl is missing or empty"):
        data.load_documents("sample", "vi", sample_dir=tmp_path)


def test_a_misspelt_notebook_override_is_refused_before_any_notebook_runs(capsys):
    assert cli.main(["notebooks", "--target", "cpu", "--set", "trian.max_steps=3"]) == 2
    assert "--set trian.max_steps: cpu.yaml has no section 'trian'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--set train.max_stpes: no such parameter"):
        notebook.with_overrides(notebook.params("cpu"), {"train.max_stpes": 3}, "cpu")
    with pytest.raises(ConfigError, match="max_steps: -3 is not allowed"):
        notebook.with_overrides(notebook.params("cpu"), {"train.max_steps": -3}, "cpu")
    assert notebook.with_overrides(notebook.params("cpu"), {"train.dropout": 0.1}, "cpu")["train"]["dropout"] == 0.1


def test_model_sizes_can_be_set_by_hand(tmp_path):
    summary = train(tiny(tmp_path, n_layer=1, n_head=4, n_embd=32, max_steps=2))
    assert summary["parameters"] < 50_000
    with pytest.raises(CheckpointError, match="n_layer, n_head, n_embd"):
        train(tiny(tmp_path, n_layer=2, n_head=4, n_embd=32, max_steps=4))


def test_the_command_line_prints_the_message_not_a_traceback(capsys, tmp_path):
    assert cli.main(["train", "--set", "batch_size=abc", f"run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "batch_size: 'abc' is not a whole number" in err and "Traceback" not in err
    assert cli.main(["train", "--set", "max_stpes=3"]) == 2
    assert "unknown training parameters: max_stpes" in capsys.readouterr().err


# --- 10-12


def test_the_validation_split_is_a_fraction_of_the_text(tmp_path):
    for lang, seed in (("en", 7), ("vi", 1234), ("en", 1)):
        train_docs, val_docs = data.split(data.load_documents("sample", lang), 0.1, seed)
        size = [sum(len(d["text"].encode()) for d in part) for part in (train_docs, val_docs)]
        assert 0.08 < size[1] / sum(size) < 0.12, (lang, seed, size)
        texts = {d["text"] for d in train_docs}
        assert not any(d["text"] in texts for d in val_docs)
    assert data.split(data.load_documents("sample", "en"), 0.1, 7) == data.split(
        data.load_documents("sample", "en"), 0.1, 7)  # fmt: skip


def test_the_sample_prompt_follows_the_language():
    assert TrainConfig(lang="en").sample_prompt.startswith("We hold")
    assert TrainConfig(lang="vi").sample_prompt.startswith("Trăm năm")
    assert TrainConfig(lang="en", sample_prompt="Call me").sample_prompt == "Call me"
