"""Reports drawn from committed results files, without a GPU."""

from pathlib import Path

import pytest
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


def test_the_build_table_is_read_from_the_committed_builds():
    every = report.load(ROOT / "results/builds.json")["builds"]
    builds = [b for b in every if b["package"] == "flash-attn 1.0.9"]
    text = report.builds_table(ROOT / "results/builds.json", "flash-attn 1.0.9")
    assert len(text.splitlines()) == 1 + len(builds) and all(f"{b['seconds']}" in text for b in builds)
    assert "2.8.3" not in text and "2.8.3" in report.builds_table(ROOT / "results/builds.json", "flash-attn 2.8.3")
    assert all((ROOT / b["log"]).exists() for b in builds)


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


def test_the_from_scratch_table_is_read_from_the_committed_h200_run():
    """One row per build x shape of results/h200/from_scratch/from_scratch.json, in both languages, each
    cell the file's number (to the 3 digits shown; Vietnamese with a decimal comma), the last column the
    own kernel's time over sdpa_cudnn's, and a caption with the GPU, torch and date of the run."""
    path = ROOT / "results/h200/from_scratch/from_scratch.json"
    result = report.load(path)
    machine = result["environment"]["machine"]
    assert len(result["rows"]) == 4 and {r["built_for"] for r in result["rows"]} == {"90", "compute_75"}
    for lang in ("en", "vi"):
        text = tables.from_scratch_markdown(result, lang)
        assert text == tables.from_scratch_markdown(path, lang)  # a path (as tools/docs_tables.py passes) or a dict
        caption = text.splitlines()[0]
        assert machine["gpu_name"] in caption and machine["torch"] in caption and result["when"][:10] in caption
        rows = _table_rows(text)
        assert len(rows) == len(result["rows"])
        for cells, r in zip(rows, result["rows"], strict=True):
            assert len(cells) == 8 and cells[1].startswith(r["shape"])
            assert (cells[0] == "sm_90") if r["built_for"] == "90" else cells[0].startswith("compute_75 (PTX")
            number = [float(c.rstrip("×").replace(",", ".")) for c in cells[2:]]
            cudnn = r["libraries"]["sdpa_cudnn"]["ms"]
            measured = [r["own_kernel_ms"], r["naive_ms"], r["libraries"]["sdpa_flash"]["ms"], cudnn]
            assert number[:4] == pytest.approx(measured, rel=5e-3), (lang, cells)  # 3 significant digits
            assert number[4] == pytest.approx(r["own_kernel_rel_err"], rel=5e-2), (lang, cells)  # 2 digits
            assert number[5] == pytest.approx(r["own_kernel_ms"] / cudnn, rel=5e-3), (lang, cells)
            if lang == "vi":
                assert not any("." in c for c in cells[2:]), cells  # decimal commas in Vietnamese
    en, vi = (tables.from_scratch_markdown(result, lang).splitlines()[2] for lang in ("en", "vi"))
    assert "own kernel (ms)" in en and "kernel tự viết (ms)" in vi


def test_the_from_scratch_table_follows_its_file():
    """A different measurement gives a different table: nothing in it is fixed in the code."""
    result = report.load(ROOT / "results/h200/from_scratch/from_scratch.json")
    row = {**result["rows"][0], "own_kernel_ms": 5.0, "libraries": {"sdpa_cudnn": {"ms": 0.25, "rel_err": 1e-4}}}
    text = tables.from_scratch_markdown({**result, "rows": [row]}, "en")
    (cells,) = _table_rows(text)
    assert cells[2] == "5.00" and cells[4] == "-" and cells[5] == "0.250" and cells[7] == "20.0×"
