"""Runs that go wrong the way real ones do: a full disk mid-checkpoint, a diverging loss, two runs
in one folder, a finished run started again, Ctrl-C, a read-only run folder, a config file that is
not one. Each ends in a sentence that says what happened and what to do, and loses nothing; each
test failed on the code before its fix (tiny CPU runs on the shipped sample)."""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import checkpoint_step as step
from conftest import refuse_writes_in
from conftest import tiny_run as tiny
from vanilla_flash import cli
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError, ConfigError, TrainingError
from vanilla_flash.training import checkpoints
from vanilla_flash.training.run import SUMMARY_KEYS, train


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# --- 1. the disk fills during a checkpoint write


def test_a_full_disk_in_torchs_writer_is_named_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """torch's zip writer reports a full disk as RuntimeError('[enforce fail at inline_container.cc:672]
    ... unexpected pos'), not OSError: it escaped, and left its hidden partial file behind."""
    real_save = torch.save

    def disk_full_at_step_20(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == 20:
            Path(f).write_bytes(b"\0" * 4096)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4032")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_step_20)
    with pytest.raises(CheckpointError, match="step-000020.ckpt could not be written.*unexpected pos.*MiB free"):
        train(tiny(tmp_path, max_steps=30, ckpt_every=10))
    folder = tmp_path / "run/checkpoints"
    assert not list(folder.glob("*.partial-*"))
    assert step(folder / "last.ckpt") == 10


def test_space_taken_by_a_cut_short_write_counts_as_free(tmp_path, monkeypatch):
    """The free-space check ran before the half-written files were removed, so the next run refused
    with '0 MiB free' although removing them made room."""
    cfg = tiny(tmp_path)
    folder = cfg.checkpoints
    folder.mkdir(parents=True)
    partial = folder / ".step-000020.ckpt.partial-999"
    partial.write_bytes(b"\0" * 100)
    need = checkpoints.checkpoint_bytes(cfg)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage",
                        lambda path: SimpleNamespace(free=0 if partial.exists() else need))  # fmt: skip
    assert checkpoints.prepare(cfg) is None and not partial.exists()


# --- 2. a diverging run


def test_a_diverging_loss_stops_the_run_and_writes_no_checkpoint_of_it(tmp_path):
    # the update of step N can make the weights NaN while step N's loss was finite: they are checked before a checkpoint
    diverged = r"(loss became nan|weights became NaN or infinite) at step (\d+) .*Lower lr.*resume: auto"
    with pytest.raises(TrainingError, match=diverged) as stopped:
        train(tiny(tmp_path, lr=1000.0, min_lr=0.0, max_steps=40, ckpt_every=1, grad_clip=0.0))
    first_bad = int(re.search(r"at step (\d+)", str(stopped.value)).group(1))
    folder = tmp_path / "run/checkpoints"
    written = list(folder.glob("*.ckpt"))
    assert written and checkpoints.latest(folder) == folder / "last.ckpt"  # what resume: auto takes
    for path in written:
        assert step(path) < first_bad
        assert all(torch.isfinite(t).all() for t in load(path)["state_dict"].values())
    assert not (tmp_path / "run/summary.json").exists()


def test_on_a_gpu_the_loss_is_read_at_log_steps_and_before_checkpoints_only():
    """Reading the device waits for the GPU: only where a step logs or checkpoints, and at the end."""
    from vanilla_flash.training.callbacks import StopOnNonFiniteLoss

    stop = StopOnNonFiniteLoss(TrainConfig(log_every=5, ckpt_every=7, max_steps=16, warmup_steps=1))
    assert [n for n in range(1, 17) if stop.reads_at(n, 16, on_cpu=False)] == [5, 7, 10, 14, 15, 16]
    assert all(stop.reads_at(n, 16, on_cpu=True) for n in range(1, 17))


def test_weights_made_nan_by_a_step_whose_loss_was_finite_stop_the_run_before_its_checkpoint():
    """The update of a step can make the weights NaN while its loss, computed before it, was finite."""
    from types import SimpleNamespace

    from vanilla_flash.training.callbacks import StopOnNonFiniteLoss

    stop = StopOnNonFiniteLoss(TrainConfig(log_every=5, ckpt_every=7, max_steps=16, warmup_steps=1))
    module = torch.nn.Linear(2, 2)
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    finite_loss = {"loss": torch.tensor(2.5)}
    stop.on_train_batch_end(SimpleNamespace(global_step=6, max_steps=16), module, finite_loss, None, 5)  # no checkpoint
    with pytest.raises(TrainingError, match="weights became NaN or infinite at step 7 .*writing no checkpoint"):
        stop.on_train_batch_end(SimpleNamespace(global_step=7, max_steps=16), module, finite_loss, None, 6)


# --- 3. two runs into one folder at once


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_first(tmp_path):
    cfg = tiny(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = cfg.checkpoints
        folder.mkdir(parents=True)
        lock = {"host": socket.gethostname(), "pid": sleeper.pid, "started": "2026-12-06 10:00:00"}
        (folder / checkpoints.LOCK).write_text(json.dumps(lock))
        with pytest.raises(CheckpointError, match=f"in use by another run .*process {sleeper.pid}, started 2026"):
            train(cfg)
        assert not list(folder.glob("*.ckpt"))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert train(cfg)["steps"] == 10  # its process is gone: the lock is taken over
    assert not (cfg.checkpoints / checkpoints.LOCK).exists() and not (Path(cfg.run_dir) / checkpoints.LOCK).exists()


def test_a_lock_from_another_machine_blocks_until_it_goes_stale(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    lock = folder / checkpoints.LOCK
    lock.write_text(json.dumps({"host": "another-colab-vm", "pid": 1, "started": "2026-12-06 10:00:00"}))
    with pytest.raises(CheckpointError, match="host another-colab-vm"), checkpoints.one_run_at_a_time(folder):
        pass
    old = time.time() - checkpoints.LOCK_STALE_SECONDS - 1
    os.utime(lock, (old, old))
    with checkpoints.one_run_at_a_time(folder):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


# --- 4. a finished run started again from a fresh run_dir (a new Colab session, checkpoints on Drive)


def test_a_finished_run_started_again_shows_its_summary(tmp_path, capsys):
    ckpt_dir = tmp_path / "drive"
    first = train(tiny(tmp_path, ckpt_dir=str(ckpt_dir)))
    again = train(tiny(tmp_path, ckpt_dir=str(ckpt_dir), run_dir=str(tmp_path / "new-session")))
    assert "nothing to train" in capsys.readouterr().out
    assert {k: again[k] for k in SUMMARY_KEYS} == json.loads(json.dumps({k: first[k] for k in SUMMARY_KEYS}))
    (ckpt_dir / "summary.json").unlink()  # written by an older version: rebuilt from the checkpoint
    rebuilt = train(tiny(tmp_path, ckpt_dir=str(ckpt_dir), run_dir=str(tmp_path / "third-session")))
    assert set(SUMMARY_KEYS) <= set(rebuilt) and rebuilt["steps"] == 10 and rebuilt["attention"] == "sdpa"
    assert rebuilt["final"]["train/loss"] == pytest.approx(first["final"]["train/loss"], rel=1e-5)
    assert "rebuilt from" in rebuilt["note"]


def test_the_command_line_shows_a_finished_runs_summary(tmp_path, capsys):
    args = ["train", "--set", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "tokenizer=bpe",
            "bpe_vocab_size=300", "seq_len=32", "batch_size=4", "max_steps=4", "warmup_steps=1", "ckpt_every=4",
            "val_every=4", "val_batches=1", "sample_tokens=4", "progress_bar=false"]  # fmt: skip
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main([*args, f"run_dir={tmp_path / 'fresh'}", f"ckpt_dir={tmp_path / 'run/checkpoints'}"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and '"steps": 4' in out


def test_a_finished_run_is_checked_against_the_run_before_its_summary_is_shown(tmp_path):
    train(tiny(tmp_path))
    with pytest.raises(CheckpointError, match="seed=1234 but this run asks for 7"):
        train(tiny(tmp_path, seed=7, max_steps=5))


# --- 5. config files that are not configs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"- max_steps: 3\n- lr: 1e-3\n", r"run.yaml holds a YAML list, not a mapping of parameters"),
        (b"just some words\n", r"run.yaml holds a YAML str, not a mapping"),
        (b"max_steps: 3\nlr: [1e-3\n", r"run.yaml line \d+, column \d+: not valid YAML"),
        (b"max_steps: 3\nrun_dir: caf\xe9\n", r"run.yaml line 2: byte 0xe9 is not UTF-8"),
        (b"", r"run.yaml is empty"),
        (b"# only a comment\n", r"run.yaml is empty"),
    ],
)
def test_a_config_file_that_is_not_a_mapping_of_parameters_is_named(tmp_path, content, message):
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_yaml(path)


# --- 8. an empty sample prompt; 13. warm-up longer than the run


def test_an_empty_sample_prompt_is_refused_before_training():
    with pytest.raises(ConfigError, match="sample_prompt: '' is not allowed"):
        TrainConfig(sample_prompt="")
    with pytest.raises(ConfigError, match="sample_prompt: '  ' is not allowed"):
        TrainConfig(sample_prompt="  ")


def test_a_warmup_longer_than_the_run_is_said(tmp_path, capsys):
    cfg = tiny(tmp_path, warmup_steps=50, max_steps=4, ckpt_every=4, val_every=4)
    assert "climbs only to 8% of lr" in cfg.notes[0]
    train(cfg)
    assert "NOTE: warmup_steps (50) is more than max_steps (4)" in capsys.readouterr().out
    assert tiny(tmp_path, warmup_steps=10, max_steps=10).notes == ()


# --- 9. resuming with another batch size or seed


def test_resuming_with_another_batch_size_reads_on_exactly(tmp_path):
    train(tiny(tmp_path, max_steps=6, ckpt_every=6))  # 6 steps x 4 blocks
    train(tiny(tmp_path, max_steps=10, ckpt_every=10, batch_size=8))  # 4 more steps x 8 blocks
    state = load(tmp_path / "run/checkpoints/last.ckpt")["WikisourceData"]
    assert state["samples_seen"] == 6 * 4 + 4 * 8 and state["step"] == 10


def test_resuming_with_another_seed_or_split_is_refused(tmp_path):
    train(tiny(tmp_path, max_steps=4, ckpt_every=4, val_every=4))
    for change, value in (("seed", 7), ("val_fraction", 0.2), ("max_docs", 3)):
        with pytest.raises(CheckpointError, match=f"{change}=.* but this run asks for {value}.*held out"):
            train(tiny(tmp_path, max_steps=8, ckpt_every=4, val_every=4, **{change: value}))


# --- 10. Ctrl-C


class InterruptAt(L.Callback):
    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            os.kill(os.getpid(), signal.SIGINT)  # what Jupyter's stop button sends the kernel


def test_ctrl_c_saves_the_step_and_says_how_to_continue(tmp_path, capsys):
    summary = train(tiny(tmp_path, max_steps=20, ckpt_every=10), callbacks=[InterruptAt(4)])
    out = capsys.readouterr().out
    assert summary["interrupted_at"] == 5  # the step under way when the signal came
    assert step(tmp_path / "run/checkpoints/last.ckpt") == 5
    assert "Interrupted: step 5 is saved in" in out and "resume: auto" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works as before again
    resumed = train(tiny(tmp_path, max_steps=20, ckpt_every=10))
    assert resumed["resumed_from"]["step"] == 5 and resumed["steps"] == 20


class InterruptThenPoison(L.Callback):
    """Ctrl-C at the start of step `at`, then that step's update makes the weights NaN after its loss was
    computed, finite: what a diverging update looks like from the step's end."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.at - 1:
            os.kill(os.getpid(), signal.SIGINT)

    def on_before_optimizer_step(self, trainer, module, optimizer):
        if trainer.global_step == self.at - 1:
            with torch.no_grad():
                next(module.parameters()).fill_(float("nan"))


def test_ctrl_c_writes_no_checkpoint_of_weights_that_went_nan(tmp_path):
    with pytest.raises(TrainingError, match=r"weights became NaN or infinite at step 4 .*resume: auto"):
        train(tiny(tmp_path, max_steps=20, ckpt_every=10), callbacks=[InterruptThenPoison(4)])
    assert not list((tmp_path / "run/checkpoints").glob("*.ckpt"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- 11. a read-only run_dir with a writable ckpt_dir; 12. resume: never keeps the earlier run's files


def test_a_run_dir_that_cannot_be_written_is_named_before_any_work(tmp_path, monkeypatch):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    refuse_writes_in(monkeypatch, readonly)
    cfg = tiny(tmp_path, run_dir=str(readonly), ckpt_dir=str(tmp_path / "ckpt"), cache_dir=None)
    with pytest.raises(CheckpointError, match="cannot write the run's logs.*Set run_dir to a folder"):
        train(cfg)
    cfg = tiny(tmp_path, cache_dir=str(readonly))
    with pytest.raises(CheckpointError, match="cannot write the token cache.*Set cache_dir"):
        train(cfg)


def test_resume_never_keeps_the_earlier_runs_model_summary_and_plots(tmp_path):
    first = train(tiny(tmp_path, resume="never"))
    run = tmp_path / "run"
    written = {name: (run / name).exists() for name in ("summary.json", "loss.png", "model", "logs")}
    assert all(written.values()), written
    train(tiny(tmp_path, resume="never", seed=5))
    (aside,) = run.glob("replaced-*")
    assert json.loads((aside / "summary.json").read_text())["config"]["seed"] == first["config"]["seed"]
    assert (aside / "loss.png").exists() and (aside / "model").is_dir() and (aside / "logs").is_dir()
    assert json.loads((run / "summary.json").read_text())["config"]["seed"] == 5


# --- 16. words that follow the run


def test_titles_name_the_model_that_was_trained():
    assert TrainConfig(model_size="124M").model_label == "GPT-2 124M"
    assert TrainConfig(n_layer=3, n_head=3, n_embd=96).model_label == "GPT-2 (3 layers, 3 heads, width 96)"


# --- one way files are written: whole or not at all


def test_a_write_that_fails_midway_leaves_the_earlier_file_or_folder_as_it_was(tmp_path):
    from vanilla_flash import files

    def file_fails_midway(partial: Path):
        partial.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    def folder_fails_midway(partial: Path):
        partial.mkdir()
        (partial / "half").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    summary = tmp_path / "summary.json"
    files.write_text_atomic(summary, "whole")
    with pytest.raises(OSError):
        files.write_atomic(summary, file_fails_midway)
    assert summary.read_text() == "whole"
    model = tmp_path / "model"
    files.write_folder_atomic(model, lambda partial: (partial.mkdir(), (partial / "weights").write_text("v1")))
    with pytest.raises(OSError):
        files.write_folder_atomic(model, folder_fails_midway)
    assert (model / "weights").read_text() == "v1" and not (model / "half").exists()
    files.write_folder_atomic(model, lambda partial: (partial.mkdir(), (partial / "weights").write_text("v2")))
    assert (model / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "summary.json"]  # nothing partial left
