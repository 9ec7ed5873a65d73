"""The front door's tables: how long each notebook took (papermill's metadata) and the key results page
(several results files), each number read from its file."""

import json
from pathlib import Path

from vanilla_flash.results import report, tables

RESULTS = Path(__file__).resolve().parents[2] / "results"


def executed(path, duration, params=None, text=""):
    cell = {"cell_type": "code", "metadata": {}, "source": [], "outputs": [{"name": "stdout", "text": text}]}
    meta = {"papermill": {"duration": duration, "start_time": "2026-12-01T10:00:00", "parameters": params or {}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [cell], "metadata": meta}))
    return path


def test_notebook_times_come_from_papermill_and_say_what_trained(tmp_path):
    folder = tmp_path / "results" / "h100" / "notebooks" / "t4"
    train = {"model_size": "124M", "max_steps": 600, "batch_size": 16, "accumulate": 2, "seq_len": 512, "attn": "x"}
    executed(folder / "01_install.ipynb", 9.4, {"target": "t4"})
    executed(folder / "02_build.ipynb", 4.7, {"target": "t4"}, text="cached wheel: ...: nothing to build")
    executed(folder / "03_train_wikisource.ipynb", 114.0, {"target": "t4", "train": train})
    executed(folder / "04_benchmark_first_try.ipynb", 1.0, {"target": "t4"})  # not one of the set's notebooks
    table = tables.notebook_times_markdown(folder)
    assert "`notebooks/params/t4.yaml` on the H100 of `results/h100/notebooks/t4` (2026-12-01)" in table
    assert "| 01_install |  | 9 s |" in table
    assert "| 02_build | flash-attn 1.0.9 from a wheel built earlier" in table
    assert "| 03_train_wikisource | GPT-2 124M, 600 steps of 32 × 512 tokens, x | 1.9 min |" in table
    assert "first_try" not in table
    assert "| 03_train_wikisource | GPT-2 124M, 600 bước, mỗi bước 32 × 512 token, x | 1,9 phút |" in (
        tables.notebook_times_markdown(folder, "vi")
    )


def test_key_results_are_read_from_their_files():
    table = tables.key_results_markdown(RESULTS)
    ladder = report.load(RESULTS / "h100/kernel_ladder/kernel_ladder.json")
    first = ladder["times"][0]["ms"]
    x = tables.number(first["flash_attn_1"] / first[f"{ladder['rungs'][-1]['name']}@compute_75"], "en")
    assert f"{x}× as fast as flash-attn 1.0.9 built the same way" in table
    speed = report.load(RESULTS / tables.SPEED_RUN)
    assert f"{tables.ratio(speed['best_over_plain']['ratio'], 'en')}× the project's strongest plain-PyTorch" in table
    assert speed["best_over_plain"]["grad_clip"] is True and f"`results/{tables.SPEED_RUN}`" in table
    nanogpt = tables.ratio(speed["best_over_plain"]["over_nanogpt_style"], "en")
    assert f"{nanogpt}× the same loop written as nanoGPT writes it" in table
    pure = speed["best_over_plain_bf16_weights"]["ratio"]
    reached = "" if pure >= tables.SPEED_GOAL_RATIO else ": not reached"
    pure_line = f"with bf16 weights on both sides (pure bf16 training), {tables.ratio(pure, 'en')}× (goal 1.05×"
    assert pure_line + reached + ")" in table
    for path in ("kernel_ladder/backward.json", "kernel_ladder/train_t4.json", "backends.json"):
        assert f"`results/h100/{path}`" in table
    # over 600 steps: from_scratch's mean distance from sdpa's curve against sdpa's own, over the seeds
    long = report.load(RESULTS / "h100/kernel_ladder/train_t4_600.json")["summary"]
    ours, again = long["from_scratch"]["mean_abs_diff"], long["sdpa"]["mean_abs_diff"]
    expected = f"{tables.ratio(sum(ours) / 3, 'en', 4)}, against {tables.ratio(sum(again) / 3, 'en', 4)}"
    assert len(ours) == len(again) == 3 and expected in table
    assert "`results/h100/kernel_ladder/train_t4_600.json`" in table
    assert "T4" in table.splitlines()[-1]  # says that no T4 ran any of it
