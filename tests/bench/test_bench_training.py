"""Training benchmarks on a CPU: the Lightning trainer and the bare loop on the same run."""

import pytest
from vanilla_flash.bench import speed
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


def test_speed_compares_each_variant_through_lightning_and_the_bare_loop(tmp_path):
    """The structure of `bench speed` (its figures are the H200's): a row per variant, both loops,
    their ratio, model TFLOP/s; a variant that cannot run is recorded and the others run; a plot."""
    from vanilla_flash.results import speed_tables

    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    variants = (("vanilla, chunked loss", {"model_impl": "vanilla", "loss": "chunked"}),
                ("a broken one", {"model_impl": "vanilla", "attn": "flash_attn_2"}),
                ("hf", {"model_impl": "hf"}))  # fmt: skip
    result = speed.speed(cfg, variants, steps=3, warmup=2, plain_batches=(2,))
    ok, broken, hf = result["rows"]
    assert (ok["model_impl"], ok["loss"], hf["model_impl"]) == ("vanilla", "chunked", "hf")
    assert ok["status"] == hf["status"] == "ok" and broken["status"].startswith("error")
    for row in (ok, hf):
        assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0 and row["model_tflops"] > 0
    assert result["matmul_tflops"] == {"before": None, "after": None} and "mfu_vs_matmul" not in ok  # no GPU here
    assert speed_tables.speed_plot(result, tmp_path / "speed.png").stat().st_size > 1000
    # the plain-PyTorch baseline, with the run's sizes, and the best Lightning row against it
    (plain,) = result["plain_pytorch"]
    assert plain["status"] == "ok" and plain["tokens_per_s"] > 0 and (plain["batch"], plain["seq"]) == (2, 32)
    best = max((ok, hf), key=lambda r: r["lightning_tokens_per_s"])
    assert result["best_over_plain"]["best"] == best["name"]
    assert result["best_over_plain"]["ratio"] == pytest.approx(best["lightning_tokens_per_s"] / plain["tokens_per_s"],
                                                               rel=1e-3)  # fmt: skip
