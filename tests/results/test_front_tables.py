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
    # the claim against the strongest baseline first: the fastest plain row any claim is measured against
    head, *others = tables.speed_claims(speed)
    plain_rows = [r["tokens_per_s"] for r in speed["plain_pytorch"] if r["status"] == "ok" and r["style"] == "gpt2"
                  and r["grad_clip"]]  # fmt: skip
    assert head["plain_tokens_per_s"] == max(plain_rows) and head["grad_clip"] is True
    claim = speed["best_over_plain_bf16_weights" if head["weights"] == "bfloat16" else "best_over_plain"]
    assert claim["ratio"] == head["ratio"]
    reached = "" if head["ratio"] >= tables.SPEED_GOAL_RATIO else ": not reached"
    strongest = f"{tables.ratio(head['ratio'], 'en')}× the strongest plain-PyTorch GPT-2 of the same run"
    assert strongest in table and f"{tables.number(head['plain_tokens_per_s'] / 1e3, 'en', 4)}k tokens/s" in table
    assert f"clipping as it does; goal 1.05×{reached})" in table and f"`results/{tables.SPEED_RUN}`" in table
    if head.get("over_nanogpt_style"):
        assert f"{tables.ratio(head['over_nanogpt_style'], 'en')}× that loop written as nanoGPT writes it" in table
    for other in others:
        assert f"on both sides, {tables.ratio(other['ratio'], 'en')}×" in table
    for path in ("kernel_ladder/backward.json", "kernel_ladder/train_t4.json", "backends.json"):
        assert f"`results/h100/{path}`" in table
    # over 600 steps: from_scratch's mean distance from sdpa's curve against sdpa's own, over the seeds
    long = report.load(RESULTS / "h100/kernel_ladder/train_t4_600.json")["summary"]
    ours, again = long["from_scratch"]["mean_abs_diff"], long["sdpa"]["mean_abs_diff"]
    expected = f"{tables.ratio(sum(ours) / 3, 'en', 4)}, against {tables.ratio(sum(again) / 3, 'en', 4)}"
    assert len(ours) == len(again) == 3 and expected in table
    assert "`results/h100/kernel_ladder/train_t4_600.json`" in table
    assert "T4" in table.splitlines()[-1]  # says that no T4 ran any of it


def test_the_speed_claim_against_the_fastest_plain_row_comes_first():
    def plain(weights, tokens, clip=True):
        return {"status": "ok", "style": "gpt2", "batch": 128, "grad_clip": clip, "weights": weights,
                "tokens_per_s": tokens}  # fmt: skip

    result = {
        "plain_pytorch": [plain("float32", 530e3), plain("float32", 560e3, clip=False), plain("bfloat16", 520e3)],
        "rows": [{"name": "a", "lightning_tokens_per_s": 560e3}, {"name": "b", "lightning_tokens_per_s": 550e3}],
        "best_over_plain": {"best": "a", "plain_batch": 128, "grad_clip": True, "ratio": 1.0566},
        "best_over_plain_bf16_weights": {"best": "b", "plain_batch": 128, "grad_clip": True, "ratio": 1.0577},
    }
    claims = tables.speed_claims(result)
    # float32's plain row that clips (530k) is the faster baseline here; the row without clipping is not its
    assert [(c["weights"], c["plain_tokens_per_s"], c["tokens_per_s"]) for c in claims] == [
        ("float32", 530e3, 560e3), ("bfloat16", 520e3, 550e3)]  # fmt: skip
    result["plain_pytorch"][2]["tokens_per_s"] = 540e3
    assert [c["weights"] for c in tables.speed_claims(result)] == ["bfloat16", "float32"]
