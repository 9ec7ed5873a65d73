"""Training on the shipped sample: loss goes down, a killed run resumes exactly, bad checkpoints
and missing data get the promised errors. Tiny model, short blocks, a small trained BPE: seconds."""

import collections
import json
import subprocess
import sys
import traceback
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import learning_run as tiny
from conftest import losses
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import CheckpointError
from vanilla_flash.training.run import train

ROOT = Path(__file__).resolve().parents[2]


def test_loss_goes_down_and_everything_is_written(tmp_path):
    summary = train(tiny(tmp_path))
    curve = losses(tmp_path / "run")
    first, last = curve[min(curve)], curve[max(curve)]
    assert summary["steps"] == 24 and max(curve) == 23
    assert last < first - 0.6, curve
    assert summary["final"]["val/loss"] < 6.0  # ln(512) = 6.24 is where an untrained model starts
    run = tmp_path / "run"
    for name in ("summary.json", "loss.png", "samples.txt", "checkpoints/last.ckpt", "checkpoints/tokenizer.json"):
        assert (run / name).exists(), name
    saved = json.loads((run / "summary.json").read_text())
    assert saved["attention"] == "sdpa" and saved["precision"] == "32-true"
    assert saved["data"]["documents"]["val"] >= 1 and saved["data"]["tokens_per_word_val"] > 0
    assert saved["sample"].startswith(tiny(tmp_path).sample_prompt)


class Killed(Exception):
    pass


class KillAt(L.Callback):
    """Stands in for a Colab session dying mid-run."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def test_a_killed_run_resumes_where_it_stopped_and_continues_the_curve(tmp_path):
    whole = tiny(tmp_path / "whole")
    train(whole)
    reference = losses(whole.run_dir)

    broken = tiny(tmp_path / "broken")
    with pytest.raises(Killed):
        train(broken, callbacks=[KillAt(15)])  # last checkpoint at step 12: three steps are lost
    assert (Path(broken.run_dir) / "checkpoints" / "last.ckpt").exists()
    summary = train(broken)  # resume: auto
    assert summary["resumed_from"]["step"] == 12
    assert summary["steps"] == whole.max_steps
    resumed = losses(broken.run_dir)
    assert sorted(resumed) == sorted(reference)  # one continuous curve, no step twice or missing
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], abs=1e-4), step


class BarAtEnd(L.Callback):
    def on_train_end(self, trainer, *_):
        bar = trainer.progress_bar_callback.train_progress_bar
        self.seen = (bar.n, bar.total)


def test_the_progress_bar_ends_full_with_gradient_accumulation_and_after_a_resume(tmp_path):
    """Lightning's own bar would read 6/6 half-way through and end at 12/? (accumulate 2)."""
    cfg = tiny(tmp_path, max_steps=6, accumulate=2, ckpt_every=2, progress_bar=True)
    whole = BarAtEnd()
    train(cfg, callbacks=[whole])
    assert whole.seen == (12, 12)
    resumed = tiny(tmp_path / "resumed", max_steps=6, accumulate=2, ckpt_every=2, progress_bar=True)
    with pytest.raises(Killed):
        train(resumed, callbacks=[KillAt(3)])  # last checkpoint at step 2: its bar goes on from batch 4 of 12
    rest = BarAtEnd()
    train(resumed, callbacks=[rest])
    assert rest.seen == (12, 12)


def test_the_token_cache_is_reused(tmp_path, monkeypatch):
    train(tiny(tmp_path, max_steps=2, val_every=2))
    from vanilla_flash.training import data

    original_pack = data.pack

    def pack_without_tokenizing(docs, tok, seq_len, cache_dir=None):
        return original_pack(docs, _NoCall(tok), seq_len, cache_dir)

    monkeypatch.setattr(data, "pack", pack_without_tokenizing)
    train(tiny(tmp_path, max_steps=4, val_every=2, run_dir=str(tmp_path / "second")))
    assert len(list((tmp_path / "cache").glob("blocks-*.npy"))) == 2  # train and validation, once each


class _NoCall:
    """A tokenizer that may be fingerprinted but not run."""

    def __init__(self, tok):
        self.backend_tokenizer = tok.backend_tokenizer

    def __call__(self, *args, **kwargs):
        raise AssertionError("tokenized again instead of reading the cache")


def test_a_corrupt_checkpoint_is_refused_with_the_way_out(tmp_path):
    cfg = tiny(tmp_path, max_steps=6)
    train(cfg)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # cut short, as when a session dies mid-write
    with pytest.raises(CheckpointError, match="cannot be read.*step-000006.ckpt.*resume: never"):
        train(tiny(tmp_path, max_steps=12))


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    train(tiny(tmp_path, max_steps=6))
    with pytest.raises(CheckpointError, match="seq_len=32.*64"):
        train(tiny(tmp_path, max_steps=12, seq_len=64))


def test_a_checkpoint_of_another_backend_is_resumed_and_logged(tmp_path, caplog):
    train(tiny(tmp_path, max_steps=6, attn="sdpa_math"))
    summary = train(tiny(tmp_path, max_steps=8, attn="eager"))
    assert summary["steps"] == 8
    assert "trained with attention 'sdpa_math'; continuing with 'eager'" in caplog.text


def test_offline_without_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    from vanilla_flash.training.data import DataError

    with pytest.raises(DataError, match="HF_HUB_OFFLINE=1.*data source 'sample'"):
        train(tiny(tmp_path, data_source="hub", fallback_to_sample=False))  # the default falls back to the sample


def test_unknown_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown training parameters: max_stpes"):
        TrainConfig.from_dict({"max_stpes": 3})


def test_lr_schedule_warms_up_then_decays_to_min_lr(tmp_path):
    from vanilla_flash.training.run import GPT2Module

    cfg = tiny(tmp_path, warmup_steps=4, max_steps=20, lr=1e-3, min_lr=1e-4)
    module = GPT2Module(cfg, vocab_size=512)
    factors = [module.lr_factor(s) for s in range(21)]
    assert factors[0] == 0.25 and factors[3] == 1.0
    assert factors[4] == pytest.approx(1.0) and factors[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    decay = [g for g in module.make_optimizer("32-true")["optimizer"].param_groups if g["weight_decay"] > 0]
    assert all(p.dim() >= 2 for g in decay for p in g["params"])


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="gloo not built into this torch")
def test_ddp_on_two_cpu_processes(tmp_path):
    """Lightning's own DDP strategy, 2 processes over gloo, launched the way a user launches it."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "vanilla_flash", "train", "--set", f"run_dir={run_dir}",
           f"cache_dir={tmp_path / 'cache'}", "tokenizer=bpe", "bpe_vocab_size=512", "seq_len=32", "batch_size=4",
           "max_steps=6", "val_every=3", "val_batches=2", "ckpt_every=3", "log_every=1", "sample_tokens=4",
           "progress_bar=false", "accelerator=cpu", "devices=2", "strategy=ddp"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 6
    assert summary["world_size"] == 2


def test_a_checkpoint_of_another_tokenizer_is_refused(tmp_path):
    train(tiny(tmp_path, max_steps=6))
    with pytest.raises(CheckpointError, match="tokenizer='bpe'.*'gpt2'"):
        train(tiny(tmp_path, max_steps=12, tokenizer="gpt2"))


def test_a_changed_tokenizer_file_is_refused(tmp_path):
    """Same tokenizer kind, other vocabulary (its tokenizer.json replaced): the ids would mean other
    tokens, so resuming is refused."""
    from vanilla_flash.training import data

    cfg = tiny(tmp_path, max_steps=6)
    train(cfg)
    saved = Path(cfg.run_dir) / "checkpoints" / "tokenizer.json"
    english = [d["text"] for d in data.load_documents("sample", "en")]
    data.train_bpe(english, 512, saved)  # same size, other merges
    with pytest.raises(CheckpointError, match="another tokenizer"):
        train(tiny(tmp_path, max_steps=12))


def test_samples_stay_within_the_context(tmp_path):
    """A prompt plus sample_tokens longer than the model's context is cut to fit, not an index error."""
    summary = train(tiny(tmp_path, max_steps=2, val_every=2, seq_len=16, sample_tokens=40))
    assert summary["sample"]


def test_fsdp_shards_each_transformer_block():
    """FSDP itself needs GPUs (Lightning refuses it on CPU); its configuration is checked here."""
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    from vanilla_flash.training.run import make_strategy

    assert make_strategy(TrainConfig(strategy="ddp")) == "ddp"
    strategy = make_strategy(TrainConfig(strategy="fsdp"))
    assert isinstance(strategy, FSDPStrategy)
    assert GPT2Block in strategy.kwargs["auto_wrap_policy"]._module_classes


class ReadsPerStep(L.Callback):
    """Which training steps turn a tensor into a Python number (`item`, `float`, `int`, `bool`): on a GPU each such
    read waits until the GPU has run everything it was given, and then it idles until the CPU gives it more. The
    optimizer's own reads are left out: they are the CPU AdamW's (fused AdamW on a GPU reads nothing)."""

    def __init__(self, monkeypatch):
        self.step, self.reads = None, collections.Counter()
        for name in ("item", "__float__", "__int__", "__bool__"):
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))

    def _counted(self, read):
        def counted(tensor, *args):
            if self.step is not None and not any("torch/optim" in f.filename for f in traceback.extract_stack()):
                self.reads[self.step] += 1
            return read(tensor, *args)

        return counted

    def on_train_batch_start(self, trainer, *args):
        self.step = trainer.global_step + 1  # the step this batch ends, as Lightning numbers the logged ones

    def on_train_end(self, trainer, *args):
        self.step = None
        self.bar = trainer.progress_bar_callback.get_metrics(trainer, trainer.lightning_module)


def test_training_reads_the_gpu_only_on_the_steps_it_logs(tmp_path, monkeypatch):
    """Lightning turns each `prog_bar` metric into a number after every batch: logging the loss to the progress bar
    that way made the GPU idle 2.4-3.3 ms before every step on an H100 (results/h100/speed/step-gaps-run). The bar
    still shows the loss, read when it refreshes. The non-finite-loss check reads every step on a CPU only: here it
    reads as on a GPU."""
    from vanilla_flash.training.callbacks import StopOnNonFiniteLoss

    as_on_gpu = StopOnNonFiniteLoss.reads_at
    monkeypatch.setattr(
        StopOnNonFiniteLoss, "reads_at", lambda self, step, last, on_cpu: as_on_gpu(self, step, last, False)
    )
    reads = ReadsPerStep(monkeypatch)
    cfg = tiny(
        tmp_path, max_steps=12, log_every=4, val_every=10**6, ckpt_every=10**6, sample_every=0, progress_bar=True
    )
    train(cfg, callbacks=[reads])
    assert reads.reads, "no read at all: the counting is broken"
    assert set(reads.reads) <= {4, 8, 12}, reads.reads
    assert isinstance(reads.bar["train/loss"], float)
