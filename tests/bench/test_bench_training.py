"""Training benchmarks on a CPU: the Lightning trainer and the bare loop on the same run."""

import pytest
from vanilla_flash.bench import training as bench_training
from vanilla_flash.config import TrainConfig


def test_lightning_overhead_runs_both_loops(tmp_path):
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    row = bench_training.lightning_overhead(cfg, steps=4, warmup=2)
    assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0
    assert row["lightning_over_bare"] == pytest.approx(
        row["lightning_tokens_per_s"] / row["bare_tokens_per_s"], rel=1e-3
    )
