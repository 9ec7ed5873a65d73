"""GPT-2 trained through the kernel ladder's kernels: the docs' table and figure read every number from
the training run's file (experiments/kernel_ladder/tables.py)."""

import copy
import json

import pytest
from vanilla_flash.results import plots

from experiments.kernel_ladder import tables

RUN = {
    "kind": "kernel_ladder_train",
    "when": "2026-12-06T10:00:00",
    "commit": "abcdef0123",
    "environment": {"machine": {"gpu_name": "Some GPU", "torch": "2.11.0", "flash_attn": "1.0.9+hd64.ptx75"}},
    "steps": 3,
    "t4_terms": True,
    "runs": [],
}


def curve(*losses):
    return [[step, loss] for step, loss in enumerate(losses)]


def run(attn, seed, losses, tokens=100.0, status="ok"):
    return {"attn": attn, "seed": seed, "status": status, "loss_curve": curve(*losses), "tokens_per_s": tokens}


@pytest.fixture
def result_file(tmp_path):
    result = copy.deepcopy(RUN)
    for seed, base in ((1, 5.0), (2, 5.5)):
        result["runs"] += [
            run("sdpa", seed, [base, base, base], tokens=200e3),
            run("sdpa", seed, [base, base + 0.01, base], tokens=200e3),
            run("from_scratch", seed, [base, base + 0.03, base], tokens=150e3),
            run("flash_attn_1", seed, [base, base + 0.06, base], tokens=300e3),
        ]
    result["runs"].append({"attn": "sdpa_efficient", "seed": 1, "status": "cannot run here: no GPU"})
    path = tmp_path / "train.json"
    path.write_text(json.dumps(result))
    return path


def test_the_table_gives_each_runs_distance_from_sdpas_first_run_and_the_verdict(result_file):
    table = tables.train_markdown(result_file)
    assert "| sdpa again (the noise of one GPU) | 0.0033 / 0.0033 | 200k |" in table
    assert "| from_scratch | 0.0100 / 0.0100 | 150k |" in table
    assert "| flash_attn_1 | 0.0200 / 0.0200 | 300k |" in table
    assert "sdpa_efficient" not in table.split("\n\n")[1]  # a backend that could not run has no row
    assert "closer or as close at 0 of 2 seeds; over the seeds, 0.0100 against sdpa's own 0.0033." in table
    assert "flash_attn_1 against sdpa run again: 0 of 2" in table
    assert "against flash-attn 1.0.9 (flash_attn_1): closer or as close at 2 of 2 seeds" in table
    assert "Its tokens/s: 0.500× flash_attn_1's." in table
    # seed 2's sdpa loss is 0.5 above seed 1's
    assert "sdpa's loss over the last 3 steps: 5.0000 to 5.5000 across the seeds (a spread of 0.5000)" in table
    assert "T4 set's terms" in table and "`1.0.9 (hd64.ptx75)`" in table
    vi = tables.train_markdown(result_file, "vi")
    assert "| from_scratch | 0,0100 / 0,0100 | 150k |" in vi and "0,0100 so với 0,0033 của chính sdpa" in vi


def test_without_flash_attn_1_the_verdict_compares_with_sdpa_alone(result_file):
    """A run of sdpa twice and from_scratch (the 600-step run): the verdict against sdpa run again only."""
    result = json.loads(result_file.read_text())
    result["runs"] = [r for r in result["runs"] if r["attn"] in ("sdpa", "from_scratch")]
    result_file.write_text(json.dumps(result))
    table = tables.train_markdown(result_file)
    assert "| from_scratch | 0.0100 / 0.0100 | 150k |" in table and "flash_attn_1" not in table
    assert "closer or as close at 0 of 2 seeds; over the seeds, 0.0100 against sdpa's own 0.0033." in table
    assert "tokens/s:" not in table.split("\n\n")[-1] and "5.0000 to 5.5000" in table


def test_the_figure_draws_each_runs_difference_from_sdpa(result_file):
    plt = plots.pyplot()
    drawn = []
    real = plt.Figure.savefig
    plt.Figure.savefig = lambda fig, *a, **k: drawn.append(fig)
    try:
        tables.train_plot([result_file], "unused.png")
    finally:
        plt.Figure.savefig = real
    lines = [(line.get_color(), list(line.get_ydata())) for line in drawn[0].axes[0].get_lines()]
    ours = [y for c, y in lines if c == tables.COLOURS["from_scratch"]]
    assert len(ours) == 2 and all(y == pytest.approx([0.0, 0.03, 0.0]) for y in ours)  # a line a seed
    assert sum(c == tables.COLOURS["flash_attn_1"] for c, _ in lines) == 2
    plt.close("all")
