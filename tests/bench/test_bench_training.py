"""Training benchmarks on a CPU: the Lightning trainer and the bare loop on the same run."""

import gc
import weakref

import pytest
import torch
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import TrainingError
from vanilla_flash.training import datamodule


def test_lightning_overhead_runs_both_loops(tmp_path):
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    row = bench_training.lightning_overhead(cfg, steps=4, warmup=2)
    assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0
    assert row["lightning_over_bare"] == pytest.approx(
        row["lightning_tokens_per_s"] / row["bare_tokens_per_s"], rel=1e-3
    )
    assert row["lightning_alloc_retries"] is None and row["bare_alloc_retries"] is None  # counted on a GPU only


def test_a_second_benchmark_in_the_same_folder_times_its_own_steps(tmp_path):
    """The second of two benchmarks in one run folder resumed the first's finished checkpoint (resume: auto),
    trained nothing, and failed in a division by None (`bench overhead` twice with one config, on an H100)."""
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    first = bench_training.lightning_overhead(cfg, steps=3, warmup=1)
    second = bench_training.lightning_overhead(cfg, steps=3, warmup=1)
    assert first["lightning_tokens_per_s"] > 0 and second["lightning_tokens_per_s"] > 0
    assert list((tmp_path / "run").glob("replaced-*"))  # the first run's files moved aside, not deleted


def test_a_step_timer_that_timed_nothing_says_why():
    timer = bench_training.StepTimer(warmup=10)
    with pytest.raises(TrainingError, match=r"no step was timed: .*10 warm-up steps"):
        _ = timer.step_seconds


def test_the_bare_loop_starts_with_the_lightning_run_s_model_freed(tmp_path, monkeypatch):
    """The Lightning run's trainer and model hold each other in reference cycles; left to the garbage
    collector, their memory would still be taken while the bare loop runs near the card's limit."""
    models, alive_at_bare = [], []
    real_bare = bench_training.bare_loop

    class Timer(bench_training.StepTimer):
        def on_train_start(self, trainer, module):
            models.extend([weakref.ref(trainer), weakref.ref(module)])

    def bare(*args, **kwargs):
        alive_at_bare.append(sum(ref() is not None for ref in models))
        return real_bare(*args, **kwargs)

    monkeypatch.setattr(bench_training, "StepTimer", Timer)
    monkeypatch.setattr(bench_training, "bare_loop", bare)
    gc.disable()  # only the benchmark's own collection may free them
    try:
        cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                          bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
        bench_training.lightning_overhead(cfg, steps=2, warmup=1)
    finally:
        gc.enable()
    assert len(models) == 2 and alive_at_bare == [0]


@pytest.mark.parametrize("prec, weights", [("bf16-mixed", torch.float32), ("bf16-true", torch.bfloat16)])
def test_both_loops_hold_the_weights_in_the_precision_s_dtype(tmp_path, monkeypatch, prec, weights):
    """Through Lightning and in the bare loop, bf16-true trains bfloat16 weights (pure bf16) and bf16-mixed
    float32 ones under autocast: the bare loop compared with Lightning trains what Lightning trains."""
    seen = []
    forward = bench_training.train.GPT2Module.forward

    def spy(self, ids):
        seen.append(next(self.parameters()).dtype)
        return forward(self, ids)

    monkeypatch.setattr(bench_training.train.GPT2Module, "forward", spy)
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False,
                      model_impl="vanilla", precision=prec)  # fmt: skip
    row = bench_training.lightning_overhead(cfg, steps=2, warmup=1)
    assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0
    assert len(seen) >= 2 * 3 and set(seen) == {weights}  # every step of both loops


def test_the_bare_loop_trains_the_tokenizer_s_vocabulary(tmp_path, monkeypatch):
    """Not GPT-2's 50257 whatever the tokenizer: the same model as the Lightning run's."""
    seen, real = [], bench_training.bare_loop
    monkeypatch.setattr(bench_training, "bare_loop", lambda *a, **k: seen.append(k["vocab_size"]) or real(*a, **k))
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    bench_training.lightning_overhead(cfg, steps=2, warmup=1)
    dm = datamodule.WikisourceData(cfg)
    dm.setup("fit")
    assert seen == [dm.stats["vocab_size"]] and seen[0] != 50257
