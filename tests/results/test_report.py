"""Reports drawn from committed results files, without a GPU."""

from pathlib import Path

from vanilla_flash.results import report, tables

ROOT = Path(__file__).resolve().parents[2]


def test_report_renders_the_committed_h100_results(tmp_path):
    runs = sorted((ROOT / "results/h100/train_124m").glob("*/summary.json"))
    assert len(runs) >= 4
    made = report.render([p.parent for p in runs], tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "NVIDIA H100" in text and "flash_attn_4" in text and "flash_attn_1" in text
    assert (tmp_path / "train_loss_curves.png").exists() and made


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


def test_fa_gpt_measurements_are_read_from_the_committed_files():
    text = report.fa_gpt_measurements(ROOT / "results/h100/fa_gpt")
    impl = report.load(ROOT / "results/h100/fa_gpt/impl.json")
    assert "NVIDIA H100" in text and "dropout_layer_norm" in text
    builds = {b["extension"]: b for b in report.extension_builds(ROOT / "results/h100/fa_gpt/build_times.txt")}
    assert f"{builds['dropout_layer_norm']['seconds']} s" in text
    fastest = max(r["tokens_per_s"] for r in impl["rows"] if r["status"] == "ok")
    assert f"{fastest / 1e3:.1f}k tokens/s" in text


def test_extension_build_times_are_read_as_the_build_printed_them(tmp_path):
    log = tmp_path / "build_times.txt"
    log.write_text(
        "# a note\n"
        "building rotary_emb: 3 files from csrc/rotary, sm_90, MAX_JOBS=16\n"
        "built somewhere/rotary_emb-1.0.9.whl in 1.3 min\n"
        "rotary_emb: 79 s, wheel somewhere/rotary_emb-1.0.9.whl\n"
        "building dropout_layer_norm: 62 files from csrc/layer_norm, sm_80, sm_90, MAX_JOBS=8\n"
    )
    assert report.extension_builds(log) == [
        {"extension": "rotary_emb", "files": 3, "archs": "sm_90", "max_jobs": 16, "seconds": 79},
        {"extension": "dropout_layer_norm", "files": 62, "archs": "sm_80, sm_90", "max_jobs": 8},  # it never ended
    ]


def test_the_build_table_and_plot_are_read_from_the_committed_builds(tmp_path):
    from vanilla_flash.results import plots, tables

    every = report.load(ROOT / "results/builds.json")["builds"]
    builds = [b for b in every if b["package"] == "flash-attn 1.0.9"]
    text = tables.builds_markdown(ROOT / "results/builds.json", package="flash-attn 1.0.9")
    assert len(text.splitlines()) == 2 + len(builds) and all(f"({b['seconds']:.0f} s)" in text for b in builds)
    assert "2.8.3" not in text
    assert "2.8.3" in tables.builds_markdown(ROOT / "results/builds.json", package="flash-attn 2.8.3")
    assert all((ROOT / b["log"]).exists() for b in builds)
    drawn = []
    real = plots.save
    plots.save = lambda fig, path: drawn.append(sorted(round(bar.get_width() * 60, 1) for bar in fig.axes[0].patches))
    try:
        report.builds_plot(ROOT / "results/builds.json", tmp_path / "builds.png", "flash-attn 1.0.9", lang="vi")
    finally:
        plots.save = real
    assert drawn == [sorted(round(b["seconds"], 1) for b in builds if b["ok"])]


def test_a_measured_build_is_recorded_once(tmp_path):
    """experiments/gpu_machine/record_build.py: a build.json becomes a row of the results file; the same
    wheel on the same machine measured again replaces its row; a build.json without what a row needs is refused."""
    import json
    import subprocess
    import sys

    results = tmp_path / "builds.json"
    results.write_text(json.dumps({"what": "x", "builds": [{"wheel": "other.whl", "machine": "m"}]}))
    facts = {"package": "flash-attn 2.8.3", "archs": ["90"], "head_dims": [64], "cuda_files": 12, "cores": 16,
             "ram_gib": 125.8, "max_jobs": 16, "seconds": 128.3, "ok": True, "wheel": "a.whl"}  # fmt: skip
    build = tmp_path / "build.json"
    tool = [sys.executable, str(ROOT / "experiments/gpu_machine/record_build.py"), str(build), "--machine", "m",
            "--log", "l.gz", "--results", str(results)]  # fmt: skip
    for seconds in (128.3, 130.0):
        build.write_text(json.dumps({**facts, "seconds": seconds}))
        subprocess.run(tool, check=True, capture_output=True)
    rows = json.loads(results.read_text())["builds"]
    assert [r["wheel"] for r in rows] == ["other.whl", "a.whl"] and rows[1]["seconds"] == 130.0
    build.write_text(json.dumps({"package": "p"}))
    refused = subprocess.run(tool, capture_output=True, text=True)
    assert refused.returncode != 0 and "lacks" in refused.stderr


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows (header and separator left out)."""
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def test_the_kernel_ladder_table_follows_its_file():
    """A row per kernel (the baselines, each rung as compute_75 PTX, the last one natively too), a
    column per shape, and the last rung against flash-attn 1.x, ssiu's kernel and sdpa_flash."""
    times = {"naive": 2.0, "sdpa_flash": 0.2, "flash_attn_1": 0.4, "ssiu_turing": 0.25,
             "scalar@compute_75": 1.0, "fast@compute_75": 0.1, "scalar@90": 0.9, "fast@90": 0.08}  # fmt: skip
    result = {
        "rungs": [{"name": "scalar"}, {"name": "fast"}],
        "times": [{"shape": "B1 H1 S64 D64", "ms": times, "rel_err": {k: 2e-4 for k in times} | {"naive": 5e-4}}],
        "environment": {"machine": {"gpu_name": "Some GPU", "torch": "2.11"}},
        "when": "2026-12-06T00:00:00",
        "commit": "abcdef123",
        "flash_attn": "1.0.9+hd64.ptx75",
    }
    lines = tables.kernel_ladder_markdown(result).splitlines()
    assert "Some GPU, torch 2.11, 2026-12-06 (commit abcdef1)" in lines[0] and "2.0e-04 to 2.0e-04" in lines[0]
    body = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert body == [
        "| naive PyTorch attention | 2.00 |",
        "| sdpa_flash | 0.200 |",
        "| flash_attn_1 (compute_75 PTX) | 0.400 |",
        "| ssiu/flash-attention-turing (compute_75 PTX) | 0.250 |",
        "| rung 0: scalar | 1.00 |",
        "| rung 1: fast | 0.100 |",
        "| rung 1: fast (this GPU's own build) | 0.0800 |",
    ]
    assert "flash-attn 1.0.9 built the same way: 4.00× faster" in lines[-1]
    assert "ssiu/flash-attention-turing: 2.50× faster" in lines[-1] and "sdpa_flash: 2.50× of its speed" in lines[-1]


def test_every_backend_of_a_result_has_its_row_in_the_order_of_the_table():
    """from_scratch, and any backend registered later, is shown: none is dropped for missing from BACKEND_ORDER."""
    row = {"dtype": "float16", "head_dim": 64, "causal": True, "seq": 1024, "status": "ok", "fwd_bwd_tflops": 1.0}
    rows = [{**row, "backend": b} for b in ("a_new_backend", "from_scratch", "eager")]
    table = report.attention_table({"rows": rows}, "float16", 64, True)
    names = [line.split("|")[1].strip() for line in table.splitlines()[4:]]
    assert names == ["eager", "from_scratch", "a_new_backend"]


def test_a_loss_plot_shows_a_validation_loss_that_climbs_above_the_start():
    """An overfitting run (notebook 3 on the small sample: val/loss 6.4 to 8.8) must not leave the plot."""
    from vanilla_flash.results.plots import loss_axis_top

    train = [(s, 7.5 - s / 100) for s in range(0, 600, 10)]
    assert loss_axis_top(train, [(100, 6.4), (600, 8.8)]) == 8.8
    assert loss_axis_top([*train, (610, 9.0)], []) == 7.5  # a late spike of the training loss is cut
