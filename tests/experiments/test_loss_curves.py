"""The loss-curve experiment's table (experiments/loss_curves), read from the committed H200 files."""

from pathlib import Path

import pytest

from experiments.loss_curves import tables as loss_curves

ROOT = Path(__file__).resolve().parents[2]


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


def test_where_transformers_gpt2_did_not_fit_the_first_configuration_is_the_reference():
    """On the H100 transformers' GPT-2 ran out of memory at batch 128 (its runs say OOM): bf16-true is
    compared with the same configuration in mixed precision, seed by seed, and the table names that."""
    folder = ROOT / "results" / "h100" / "speed" / "bf16-weights-curves"
    results = loss_curves.loss_curve_results(folder)
    runs = [run for result in results for run in result["runs"]]
    assert {run["status"] for run in runs if run["config"] == "hf"} == {"OOM"}
    assert loss_curves.reference_config(results) == "vanilla, bf16 residual"
    tail = results[0]["tail_steps"]
    mixed = {run["seed"]: run for run in runs if run["config"] == "vanilla, bf16 residual"}
    pure = {run["seed"]: run for run in runs if run["config"] == "vanilla, bf16 residual, bf16 weights"}
    assert len(mixed) == len(pure) == 3
    lines = loss_curves.loss_curves_markdown(folder).splitlines()
    assert "for “vanilla, bf16 residual”, then each other run minus" in lines[0]
    assert lines[2] == "| seed | “vanilla, bf16 residual”: loss | vanilla, bf16 residual, bf16 weights |"
    for line in lines[4:7]:
        seed, loss, difference = (cell.strip() for cell in line.strip("|").split("|"))
        ours, theirs = (loss_curves.tail_mean(r[int(seed)]["loss_curve"], tail) for r in (pure, mixed))
        assert float(loss) == pytest.approx(theirs, abs=6e-4)
        assert float(difference) == pytest.approx(ours - theirs, abs=6e-4)
