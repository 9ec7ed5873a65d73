"""Benchmarks on a CPU-sized grid: correctness gate before timing, OOM as a result, file formats,
plots and the report that renders committed results without a GPU."""

import csv
import json
from pathlib import Path

import pytest
import torch
from vanilla_flash import attention, bench, cli, report

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(seq_lens=(32, 64), head_dims=(16,), causal_opts=(True, False), dtypes=("float32",), tokens=128,
            hidden=32, repeats=2)  # fmt: skip


def test_grid_times_what_runs_and_explains_what_does_not():
    points = bench.attention_grid(["eager", "sdpa", "sdpa_flash", "flash_attn_4", "auto"], log=lambda _: None, **TINY)
    assert len(points) == 2 * 2 * 5
    ok = [p for p in points if p.status == "ok"]
    assert {p.backend for p in ok} == {"eager", "sdpa", "sdpa_flash", "auto"}
    assert all(p.fwd_ms > 0 and p.bwd_ms > 0 and p.fwd_bwd_ms > 0 and p.rel_err < 1e-4 for p in ok)
    skipped = [p for p in points if p.backend == "flash_attn_4"]
    assert all(p.status == "skip" and "CUDA" in p.note for p in skipped)
    ratios = bench.auto_ratios(points)
    assert len(ratios) == 4 and all(r["auto_picked"] == "sdpa" and r["ratio"] > 0 for r in ratios)
    # auto was timed again, alternately with the fastest backend, and that ratio is the one reported
    assert all(r["ratio"] == r["ratio_alternating"] and r["ratio_separate"] > 0 for r in ratios)
    assert all(p.paired_with in {"eager", "sdpa", "sdpa_flash"} for p in ok if p.backend == "auto")


def test_a_wrong_backend_is_reported_and_not_timed(monkeypatch):
    real = attention.get("sdpa_math")

    def wrong(module, q, k, v, mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        out, _ = real.forward(module, q, k, v, mask, dropout, scaling, is_causal, **kw)
        return out * 1.1, None

    monkeypatch.setitem(attention._REGISTRY, "sdpa_math", type(real)(**{**real.__dict__, "forward": wrong}))
    points = bench.attention_grid(["sdpa_math"], log=lambda _: None, **TINY)
    assert all(p.status == "wrong" and p.fwd_ms is None and "not timed" in p.note for p in points)


def test_out_of_memory_is_a_result_and_the_grid_goes_on(monkeypatch):
    calls = []

    def oom(*args, **kwargs):
        calls.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(bench, "measure_backend", oom)
    points = bench.attention_grid(["sdpa", "eager"], log=lambda _: None, **TINY)
    assert len(calls) == len(points) and all(p.status == "OOM" for p in points)


def test_flop_counts():
    assert bench.attention_flops(1, 1, 1024, 64, False, "fwd") == 4 * 1024 * 1024 * 64
    assert bench.attention_flops(2, 3, 512, 64, True, "fwd_bwd") == 3.5 * 4 * 2 * 3 * 512 * 512 * 64 / 2


def test_memory_growth_exponent():
    rows = [{"backend": "eager", "seq": s, "peak_mem_mib": s * s / 1000} for s in (1024, 4096)]
    rows += [{"backend": "flash", "seq": s, "peak_mem_mib": s / 10} for s in (1024, 4096)]
    assert bench.growth_exponents(rows) == {"eager": 2.0, "flash": 1.0}


def test_cli_writes_json_and_csv_and_report_draws_them(tmp_path, capsys):
    out = tmp_path / "attention.json"
    assert cli.main(["bench", "attention", "--seq", "32,64", "--head-dims", "16", "--dtypes", "float32",
                     "--tokens", "128", "--hidden", "32", "--repeats", "2", "--memory-seq", "32,64",
                     "--backends", "eager,sdpa,auto", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["kind"] == "attention" and result["environment"]["machine"]["torch"]
    assert "auto / fastest" in capsys.readouterr().out
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == len(result["rows"]) and {"backend", "seq", "fwd_bwd_tflops", "status"} <= set(rows[0])
    train_out = tmp_path / "train.json"
    assert cli.main(["bench", "train", "--size", "tiny", "--seq", "32", "--tokens", "64", "--steps", "2",
                     "--backends", "eager,sdpa", "--out", str(train_out)]) == 0  # fmt: skip
    made = report.render([out, train_out], tmp_path / "img")
    names = {p.name for p in made}
    assert {"attention_tflops_float32.png", "attention_speedup_float32.png", "train_tokens_per_s.png",
            "summary.md"} <= names  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in made if p.suffix == ".png")
    assert "| eager |" in (tmp_path / "img" / "summary.md").read_text()


def test_report_renders_the_committed_h100_results(tmp_path):
    runs = sorted((ROOT / "results/h100/train_124m").glob("*/summary.json"))
    assert len(runs) >= 4
    made = report.render([p.parent for p in runs], tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "NVIDIA H100" in text and "flash_attn_4" in text and "flash_attn_1" in text
    assert (tmp_path / "train_loss_curves.png").exists() and made


def test_lightning_overhead_runs_both_loops(tmp_path):
    from vanilla_flash.train import TrainConfig

    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    row = bench.lightning_overhead(cfg, steps=4, warmup=2)
    assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0
    assert row["lightning_over_bare"] == pytest.approx(
        row["lightning_tokens_per_s"] / row["bare_tokens_per_s"], rel=1e-3
    )


def test_the_reference_is_computed_in_slices_that_fit(monkeypatch):
    monkeypatch.setattr(bench, "REFERENCE_BYTES", 1000)  # force one (batch, head) slice at a time
    q, k, v = (torch.randn(2, 3, 40, 8) for _ in range(3))
    sliced = bench._reference_forward((q, k, v), causal=True)
    torch.testing.assert_close(sliced, attention.attend("eager", q, k, v, causal=True))


def test_timeit_times_fast_calls_in_blocks_and_slow_calls_alone(monkeypatch):
    calls = []

    def call():
        calls.append(1)

    monkeypatch.setattr(bench, "BLOCK_S", 0.0)  # blocks of one call
    assert bench.timeit(call, warmup=3, repeats=10) >= 0
    assert len(calls) == 3 + 10
    calls.clear()
    monkeypatch.setattr(bench, "BLOCK_S", 1.0)  # blocks as long as 100 calls allow
    bench.timeit(call, warmup=3, repeats=10)
    assert len(calls) == 3 + 10 * 100
    calls.clear()
    monkeypatch.setattr(bench, "SLOW_CALL_S", 0.0)  # every call counts as slow: 2 warm-up calls, 3 alone
    bench.timeit(call, warmup=3, repeats=10)
    assert len(calls) == 2 + 3


def test_paired_timing_alternates_the_two_calls(monkeypatch):
    order = []
    monkeypatch.setattr(bench, "BLOCK_S", 0.0)  # blocks of one call
    bench.paired_timeit(lambda: order.append("a"), lambda: order.append("b"), warmup=2, repeats=3)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3


def test_impl_rows_are_compared_with_the_fastest_hugging_face_row():
    rows = [
        {"model_impl": "hf", "attn": "sdpa", "fused": [], "status": "ok", "tokens_per_s": 100e3, "peak_mem_gib": 20.0,
         "mfu": 0.1},
        {"model_impl": "hf", "attn": "eager", "fused": [], "status": "ok", "tokens_per_s": 50e3, "peak_mem_gib": 30.0,
         "mfu": 0.05},
        {"model_impl": "flash_attn", "attn": "-", "fused": [], "status": "ok", "tokens_per_s": 160e3,
         "peak_mem_gib": 12.0, "mfu": 0.16},
        {"model_impl": "flash_attn", "attn": "-", "fused": ["fused_mlp"], "status": "error: FlashAttnModelError: x",
         "tokens_per_s": None, "peak_mem_gib": None},
    ]  # fmt: skip
    assert report.against_hf(rows) == [(1.0, 1.0), (0.5, 1.5), (1.6, 0.6), None]
    table = report.impl_table({"rows": rows})
    assert "| 160.0k | 1.60 |" in table and "| 12.0 | 0.60 |" in table and "FlashAttnModelError" in table
    assert report.against_hf(rows[2:]) == [None, None]  # no Hugging Face row ran: nothing to compare with
    on_cpu = [{**rows[0], "peak_mem_gib": None, "mfu": None}]
    assert report.against_hf(on_cpu) == [(1.0, None)]
    assert "| 100.0k | 1.00 | - | - | - |" in report.impl_table({"rows": on_cpu})
