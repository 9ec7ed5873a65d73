"""Attention benchmarks on a CPU-sized grid: correctness gate before timing, OOM as a result, the
memory sweep, file formats and the plots drawn from them."""

import csv
import json

import torch
from vanilla_flash import cli
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import attention as bench_attention
from vanilla_flash.bench import memory
from vanilla_flash.results import report

TINY = dict(seq_lens=(32, 64), head_dims=(16,), causal_opts=(True, False), dtypes=("float32",), tokens=128,
            hidden=32, repeats=2)  # fmt: skip


def test_grid_times_what_runs_and_explains_what_does_not():
    points = bench_attention.attention_grid(
        ["eager", "sdpa", "sdpa_flash", "flash_attn_4", "auto"], log=lambda _: None, **TINY
    )
    assert len(points) == 2 * 2 * 5
    ok = [p for p in points if p.status == "ok"]
    assert {p.backend for p in ok} == {"eager", "sdpa", "sdpa_flash", "auto"}
    assert all(p.fwd_ms > 0 and p.bwd_ms > 0 and p.fwd_bwd_ms > 0 and p.rel_err < 1e-4 for p in ok)
    skipped = [p for p in points if p.backend == "flash_attn_4"]
    assert all(p.status == "skip" and "CUDA" in p.note for p in skipped)
    ratios = bench_attention.auto_ratios(points)
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
    points = bench_attention.attention_grid(["sdpa_math"], log=lambda _: None, **TINY)
    assert all(p.status == "wrong" and p.fwd_ms is None and "not timed" in p.note for p in points)


def test_out_of_memory_is_a_result_and_the_grid_goes_on(monkeypatch):
    calls = []

    def oom(*args, **kwargs):
        calls.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(bench_attention, "measure_backend", oom)
    points = bench_attention.attention_grid(["sdpa", "eager"], log=lambda _: None, **TINY)
    assert len(calls) == len(points) and all(p.status == "OOM" for p in points)


def test_memory_growth_exponent():
    rows = [{"backend": "eager", "seq": s, "peak_mem_mib": s * s / 1000} for s in (1024, 4096)]
    rows += [{"backend": "flash", "seq": s, "peak_mem_mib": s / 10} for s in (1024, 4096)]
    assert memory.growth_exponents(rows) == {"eager": 2.0, "flash": 1.0}


def test_the_reference_is_computed_in_slices_that_fit(monkeypatch):
    monkeypatch.setattr(bench_attention, "REFERENCE_BYTES", 1000)  # force one (batch, head) slice at a time
    q, k, v = (torch.randn(2, 3, 40, 8) for _ in range(3))
    sliced = bench_attention._reference_forward((q, k, v), causal=True)
    torch.testing.assert_close(sliced, attention.attend("eager", q, k, v, causal=True))


def test_cli_writes_json_and_csv_and_report_draws_them(tmp_path, capsys):
    out = tmp_path / "attention.json"
    assert cli.main(["bench", "attention", "--seq", "32,64", "--head-dims", "16", "--dtypes", "float32",
                     "--tokens", "128", "--hidden", "32", "--repeats", "2", "--memory-seq", "32,64",
                     "--backends", "eager,sdpa,auto", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["kind"] == "attention" and result["environment"]["machine"]["torch"]
    printed = capsys.readouterr().out
    # on a CPU: the check and the time of every point, and what such numbers cannot say; no TFLOP/s
    assert bench_attention.CPU_NOTE in printed and "rel err" in printed
    assert "TFLOP/s" not in printed.replace(bench_attention.CPU_NOTE, "")
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


def test_on_a_gpu_the_summary_gives_speed_and_auto_against_the_fastest():
    row = {"backend": "sdpa_cudnn", "dtype": "bfloat16", "head_dim": 64, "causal": True, "seq": 1024, "status": "ok",
           "rel_err": 2e-3, "fwd_bwd_ms": 1.0, "fwd_bwd_tflops": 300.0, "peak_mem_mib": 512.0, "note": ""}  # fmt: skip
    result = {"environment": {"machine": {"device": "cuda"}}, "rows": [row, {**row, "backend": "auto"}],
              "auto": [{"dtype": "bfloat16", "head_dim": 64, "causal": True, "seq": 1024, "ratio": 0.99,
                        "ratio_separate": 0.97, "fastest": "sdpa_cudnn", "auto_picked": "sdpa_cudnn"}],
              "memory_growth_exponent": {"sdpa_cudnn": 1.0}, "wrapper_vs_direct": []}  # fmt: skip
    text = bench_attention.summary(result)
    assert "| sdpa_cudnn | 300 |" in text and "auto / fastest" in text and "worst: 0.990" in text
    assert bench_attention.CPU_NOTE not in text


def test_the_grid_reads_as_small_tables_with_failures_and_refusals_said_once():
    row = {"backend": "sdpa", "dtype": "float32", "head_dim": 32, "causal": False, "seq": 64, "status": "ok",
           "rel_err": 2e-7, "fwd_bwd_ms": 0.5, "note": ""}  # fmt: skip
    refused = [{**row, "backend": b, "status": "skip", "note": f"{b} needs a CUDA GPU; on CPU use sdpa"}
               for b in ("flash_attn_1", "flash_attn_2")]  # fmt: skip
    rows = [row, {**row, "seq": 128, "fwd_bwd_ms": 0.75}, {**row, "backend": "auto", "status": "wrong", "rel_err": 0.2},
            *refused]  # fmt: skip
    text = bench_attention.points_markdown({"environment": {"machine": {"device": "cpu"}}, "rows": rows})
    assert "**float32, head dim 32, full** (fwd+bwd ms)" in text
    assert "| backend | 64 | 128 |" in text and "| sdpa | 0.500 | 0.750 |" in text
    assert "| auto | ✗ wrong 2.0e-01 | – |" in text
    assert text.endswith("Cannot run here: flash_attn_1, flash_attn_2 (it needs a CUDA GPU).")
