"""Reports drawn from committed results files, without a GPU."""

from pathlib import Path

import pytest
from vanilla_flash.results import loss_curves, report, speed_tables, tables

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
    assert builds["dropout_layer_norm"]["files"] == 62 and builds["dropout_layer_norm"]["seconds"] > 0
    assert f"{builds['dropout_layer_norm']['seconds']} s" in text
    fastest = max(r["tokens_per_s"] for r in impl["rows"] if r["status"] == "ok")
    assert f"{fastest / 1e3:.1f}k tokens/s" in text


def test_the_build_table_is_read_from_the_committed_builds():
    every = report.load(ROOT / "results/builds.json")["builds"]
    builds = [b for b in every if b["package"] == "flash-attn 1.0.9"]
    text = report.builds_table(ROOT / "results/builds.json", "flash-attn 1.0.9")
    assert len(text.splitlines()) == 1 + len(builds) and all(f"{b['seconds']}" in text for b in builds)
    assert "2.8.3" not in text and "2.8.3" in report.builds_table(ROOT / "results/builds.json", "flash-attn 2.8.3")
    two_cores = [b for b in builds if b["cores"] == 2]
    minimal = next(b for b in two_cores if b["head_dims"] == [64])
    assert minimal["ok"] and minimal["seconds"] < 300  # the goal: 5 minutes on Colab's 2 cores
    assert all((ROOT / b["log"]).exists() for b in builds)


def test_a_measured_build_is_recorded_once(tmp_path):
    """tools/record_build.py: a build.json becomes a row of the results file; the same wheel on the same
    machine measured again replaces its row; a build.json without what a row needs is refused."""
    import json
    import subprocess
    import sys

    results = tmp_path / "builds.json"
    results.write_text(json.dumps({"what": "x", "builds": [{"wheel": "other.whl", "machine": "m"}]}))
    facts = {"package": "flash-attn 2.8.3", "archs": ["90"], "head_dims": [64], "cuda_files": 12, "cores": 16,
             "ram_gib": 125.8, "max_jobs": 16, "seconds": 128.3, "ok": True, "wheel": "a.whl"}  # fmt: skip
    build = tmp_path / "build.json"
    tool = [sys.executable, str(ROOT / "tools/record_build.py"), str(build), "--machine", "m", "--log", "l.gz",
            "--results", str(results)]  # fmt: skip
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


def test_the_speed_table_is_read_from_the_committed_h200_run_and_leaves_out_what_measured_nothing(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed.json"
    result = json.loads(path.read_text())
    valid = [r for r in result["rows"] if r["status"] == "ok" and "note" not in r]
    plain = [r for r in result["plain_pytorch"] if r["status"] == "ok"]
    assert valid and plain
    best = max(valid, key=lambda r: r["lightning_tokens_per_s"])
    for lang, point in (("en", "."), ("vi", ",")):
        table = speed_tables.speed_markdown(path, lang)
        lines = table.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1
        rows = lines[first : first + len(valid) + len(plain)]
        for line, r in zip(rows[: len(valid)], valid, strict=True):
            assert r["name"] in line and f"{r['lightning_tokens_per_s'] / 1e3:.1f}k" in line
            assert f"{r['bare_tokens_per_s'] / 1e3:.1f}k" in line and f"{r['lightning_over_bare']:.3f}" in line
        for line, r in zip(rows[len(valid) :], plain, strict=True):  # the plain-PyTorch GPT-2: its own loop only
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert f"batch {r['batch']}" in cells[0] and cells[1] == "-"
            assert cells[2] == f"{r['tokens_per_s'] / 1e3:.1f}k"
        # then the verdict: the best row against the plain model (the file's ratio) and against the goal
        verdict = lines[first + len(valid) + len(plain) + 1]
        assert best["name"] in verdict
        assert f"{result['best_over_plain']['ratio']:.3f}×".replace(".", point) in verdict
        assert f"{best['lightning_tokens_per_s'] / 590_000:.3f}".replace(".", point) in verdict
        assert result["environment"]["machine"]["gpu_name"] in table and "590k" in table
    # a row annotated afterwards as not a measurement (a run that fell back to eager), and one that failed
    annotated = dict(valid[0], name="ran uncompiled", note="not a measurement: dynamo gave up compiling")
    failed = {**valid[0], "name": "ran out of memory", "status": "OOM"}
    changed = dict(result, rows=[dict(valid[0], lightning_tokens_per_s=123456.0), annotated, failed])
    (tmp_path / "speed.json").write_text(json.dumps(changed))
    table = speed_tables.speed_markdown(tmp_path / "speed.json")
    assert "123.5k" in table and "ran uncompiled" not in table and "ran out of memory" not in table
    assert speed_tables.speed_plot(changed, tmp_path / "speed.png").stat().st_size > 1000


def test_the_plain_pytorch_table_is_read_from_the_committed_h200_profile(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "plain_pytorch_profile.json"
    result = json.loads(path.read_text())
    measured = [r for r in result["plain_pytorch"] if r["status"] == "ok"]
    assert measured
    for lang, yes in (("en", "yes"), ("vi", "có")):
        lines = speed_tables.plain_pytorch_markdown(path, lang).splitlines()
        rows = lines[next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1 :]
        assert len(rows) == len(measured)
        for line, r in zip(rows, measured, strict=True):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0] == str(r["batch"]) and cells[2] == str(r["vocab"])
            assert cells[3] == f"{r['tokens_per_s'] / 1e3:.1f}k" and (cells[1] == yes) == r["grad_clip"]
    changed = dict(result, plain_pytorch=[dict(measured[0], tokens_per_s=654321.0), {"status": "error: OOM"}])
    (tmp_path / "profile.json").write_text(json.dumps(changed))
    assert "654.3k" in speed_tables.plain_pytorch_markdown(tmp_path / "profile.json")


def test_the_loss_kernel_table_gives_each_forms_fastest_setting_from_the_committed_file(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "loss_kernel.json"
    result = json.loads(path.read_text())
    timed = [r for r in result["kernel"] if "ms" in r]
    forms = {r["form"] for r in timed}
    for lang, point in (("en", "."), ("vi", ",")):
        lines = speed_tables.loss_kernel_markdown(path, lang).splitlines()
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[lines.index(next(
            line for line in lines if line.startswith("|---"))) + 1 :]]  # fmt: skip
        assert len(rows) == 1 + len(forms) + 1  # torch.compile's, each form's fastest, the module's setting then
        assert rows[0][4] == tables.number(result["torch_compiled"]["ms"], lang)
        for form in forms:
            fastest = min((r for r in timed if r["form"] == form), key=lambda r: r["ms"])
            row = next(cells for cells in rows if f"`{form}`" in cells[0])
            assert row[1:5] == [str(fastest["block"]) if fastest["block"] else "-", str(fastest["warps"]),
                                str(fastest["programs_per_sm"]), tables.number(fastest["ms"], lang)]  # fmt: skip
            assert row[5] == tables.number(fastest["ms"] / result["torch_compiled"]["ms"], lang)
        assert f"{len(timed)} " in lines[0] and result["commit"][:7] in lines[0] and point in rows[0][4]
    faster = dict(result, kernel=[dict(timed[0], ms=0.123)])
    (tmp_path / "loss_kernel.json").write_text(json.dumps(faster))
    assert "| 0.123 |" in speed_tables.loss_kernel_markdown(tmp_path / "loss_kernel.json")


def test_the_step_profile_table_gives_the_gpu_time_and_each_variant_against_the_step_profiled(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "best_profile.json"
    result = json.loads(path.read_text())
    measured = [v for v in result["variants"] if v["status"] == "ok"]
    lines = speed_tables.step_profile_markdown(path).splitlines()
    assert f"{tables.number(result['profile']['gpu_ms_per_step'], 'en', 4)} ms of GPU time" in lines[0]
    for group, ms in result["profile"]["groups_ms_per_step"].items():
        assert tables.number(ms, "en") + " ms" in lines[0], group
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert [r[0] for r in rows] == [v["name"] for v in measured]
    for cells, v in zip(rows, measured, strict=True):
        assert cells[2] == f"{v['tokens_per_s'] / 1e3:.1f}k"
        assert cells[3] == f"{v['tokens_per_s'] / measured[0]['tokens_per_s']:.3f}"
    assert "trong đó nhân ma trận" in speed_tables.step_profile_markdown(path, "vi")
    failed = dict(result, variants=[*result["variants"], {"name": "batch 256", "status": "OOM"}])
    (tmp_path / "profile.json").write_text(json.dumps(failed))
    assert "batch 256" not in speed_tables.step_profile_markdown(tmp_path / "profile.json")


def test_the_loss_curves_table_gives_each_seeds_difference_from_transformers_gpt2(tmp_path):
    """Per seed: transformers' GPT-2's loss over the last steps and each configuration's difference
    from it, read from every loss_curves*.json of the folder; then the mean and standard deviation."""
    import json
    import shutil
    import statistics

    folder = ROOT / "results" / "h200" / "speed" / "loss-curves"
    results = loss_curves.loss_curve_results(folder)
    assert len(results) >= 2 and all(r["kind"] == "loss_curves" for r in results)
    runs = [run for result in results for run in result["runs"] if run["status"] == "ok"]
    tail = results[0]["tail_steps"]

    def tail_mean(run):
        return sum(loss for _, loss in run["loss_curve"][-tail:]) / tail

    first = {}
    for run in runs:
        if run["config"] == "hf":
            first.setdefault(run["seed"], run)
    for lang, point in (("en", "."), ("vi", ",")):
        lines = loss_curves.loss_curves_markdown(folder, lang).splitlines()
        header = [c.strip() for c in lines[2].strip("|").split("|")]
        table = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
        rows, mean_row, sd_row = {cells[0]: cells for cells in table[:-2]}, table[-2], table[-1]
        assert list(rows) == [str(seed) for seed in sorted(first)]

        def value(cell: str) -> float:
            return float(cell.replace(",", "."))

        for config in ("vanilla, bf16 residual", "vanilla, float32 residual"):
            column = header.index(config)
            differences = []
            for run in (r for r in runs if r["config"] == config):
                differences.append(tail_mean(run) - tail_mean(first[run["seed"]]))
                assert value(rows[str(run["seed"])][column]) == pytest.approx(differences[-1], abs=6e-4)
            assert value(mean_row[column]) == pytest.approx(statistics.mean(differences), abs=6e-4)
            assert value(sd_row[column]) == pytest.approx(statistics.stdev(differences), abs=6e-4)
        assert point in rows[str(runs[0]["seed"])][1]
    copy = tmp_path / "curves"
    shutil.copytree(folder, copy)
    changed = json.loads((copy / "loss_curves.json").read_text())
    bf16 = next(run for run in changed["runs"] if run["config"] == "vanilla, bf16 residual")
    bf16["loss_curve"] = [[step, loss + 0.5] for step, loss in bf16["loss_curve"]]
    (copy / "loss_curves.json").write_text(json.dumps(changed))
    before = loss_curves.loss_curves_markdown(folder).splitlines()
    after = loss_curves.loss_curves_markdown(copy).splitlines()
    assert [a != b for a, b in zip(before, after, strict=True)].count(True) == 3  # that seed, the mean, the deviation
