"""Where the GPU waits in a training step (experiments/speed/step_gaps.py): the trace's reading, on a made-up
trace, and the waits' counting; the script's run end to end on a CPU."""

import json

import pytest

from experiments.speed import probe_tables, step_gaps


def _kernel(ts, dur, correlation, name="k"):
    return {"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur, "args": {"correlation": correlation}}


def _launch(ts, correlation, tid=7):
    return {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": ts, "dur": 2, "tid": tid,
            "args": {"correlation": correlation}}  # fmt: skip


def test_gaps_are_the_holes_between_busy_stretches_with_what_launched_the_work_after_them():
    trace = {"traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": "the whole window", "ts": 0, "dur": 1000, "tid": 7},
        _kernel(100, 100, 1), _kernel(150, 100, 2),  # overlapping: one stretch, 100-250
        _kernel(300, 50, 3),  # a 50 us hole before it, launched before the hole began: the GPU waited on something
        _kernel(600, 200, 4, "after the CPU"),  # a 250 us hole, launched after it began: the GPU waited for the CPU
        _launch(90, 1), _launch(95, 2), _launch(200, 3), _launch(590, 4),
        {"ph": "X", "cat": "cpu_op", "name": "Optimizer.step#AdamW.step", "ts": 500, "dur": 300, "tid": 7},
        {"ph": "X", "cat": "cpu_op", "name": "aten::_fused_adamw_", "ts": 580, "dur": 20, "tid": 7},
        {"ph": "X", "cat": "cpu_op", "name": "another thread's", "ts": 580, "dur": 20, "tid": 8},
    ]}  # fmt: skip
    result = step_gaps.gaps(trace, steps=2)
    assert result["wall_ms_per_step"] == 0.5  # 1000 us over 2 steps
    assert result["gpu_busy_ms_per_step"] == pytest.approx((150 + 50 + 200) / 2 / 1e3)
    assert result["gpu_idle_ms_per_step"] == pytest.approx((1000 - 400) / 2 / 1e3)
    # leads: 100-90, 150-95, 300-200, 600-590 us: two of four launched under 50 us before they ran
    assert result["launch_lead_ms"] == {"median": 0.055, "under_50us": 0.5}
    first, second = result["longest_gaps"]
    assert first == {"ms": 0.25, "work": "after the CPU", "launched_after_gap_began": True,
                     "inside": ["aten::_fused_adamw_", "Optimizer.step#AdamW.step", "the whole window"]}  # fmt: skip
    assert second["ms"] == 0.05 and second["launched_after_gap_began"] is False


def test_an_empty_or_missing_trace_has_no_step_time():
    assert step_gaps.gaps({"traceEvents": []}, steps=3) == {"wall_ms_per_step": None}
    assert step_gaps.gaps(None, steps=3) == {"wall_ms_per_step": None}  # the loop ended before its window did


def test_waits_for_the_gpu_are_counted_where_the_code_asked_for_them():
    window = step_gaps.Window(steps=2)

    def reads_the_loss():
        window._record("Warning: called a synchronizing CUDA operation", UserWarning, "x.py", 1)

    for _ in range(4):
        reads_the_loss()
    window._record("another warning", UserWarning, "x.py", 1)  # not a wait: not counted
    (where, count), = window.waits.items()  # fmt: skip
    assert count == 4 and "reads_the_loss" in where.split(" <- ")[0]
    assert step_gaps._per_step(window.waits, 2) == [{"where": where, "per_step": 2.0}]


def test_the_script_profiles_both_loops(tmp_path):
    out = tmp_path / "gaps.json"
    step_gaps.main([str(out), "--steps", "2", "--set", "model_size=tiny", "seq_len=32", "batch_size=4",
                    "compile=false", "tokenizer=bpe", "bpe_vocab_size=512", "attn=sdpa", "loss=chunked",
                    f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "log_every=2"])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["kind"] == "step_gaps" and result["variant"].endswith("bf16 weights")
    for loop in ("lightning", "bare"):
        assert result[loop]["wall_ms_per_step"] > 0 and result[loop]["gpu_busy_ms_per_step"] == 0  # a CPU
        assert result[loop]["waits_per_step"] == []
    for lang, words in (
        ("en", ("2 steps of", "(set here: attn=sdpa)", "| Lightning |", "| bare loop |")),
        ("vi", ("2 bước của", "(đặt ở đây: attn=sdpa)", "| Lightning |", "| vòng lặp trần |")),
    ):
        table = probe_tables.step_gaps_markdown(out, lang)
        assert all(w in table for w in words), table


def test_pytorchs_own_frames_are_machinery_and_lightnings_are_not():
    """A wait inside Lightning's trainer (`lightning/pytorch/...`) is named there, not at the call of `fit`."""
    machinery = [p for p in ("/venv/site-packages/torch/nn/module.py", "/venv/site-packages/lightning/pytorch/x.py")
                 if any(m in p for m in step_gaps.MACHINERY)]  # fmt: skip
    assert machinery == ["/venv/site-packages/torch/nn/module.py"]
