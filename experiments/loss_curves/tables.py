"""Configurations trained from the same seeds, their loss curves compared with a reference: transformers'
GPT-2 (results/h200/speed/loss-curves/), or where it did not fit, the first configuration (pure bf16
against mixed precision, results/h100/speed/bf16-weights-curves/). `loss_curve_results` reads a folder's
files, `loss_against_reference` each curve minus the reference's first run of the same seed, `tail_mean` a
curve's last steps, and `loss_curves_markdown` the table the docs quote (en, vi)."""

from __future__ import annotations

import statistics
from pathlib import Path

from vanilla_flash.results import report

_LOSS_CURVES = {
    "en": {
        "seed": "seed",
        "hf": "transformers' GPT-2",
        "loss": "{reference}: loss",
        "again": "{reference} again",
        "mean": "mean",
        "sd": "standard deviation",
        "caption": "GPT-2 124M at batch 128 for {steps} steps in the bare loop, the learning rate at its floor at "
        "step {max_steps} (as in the speed experiment), on {gpu}, torch {torch}, {dates} (commits {commits}): "
        "the training loss averaged over the last {tail} steps, for {reference}, then each "
        "other run minus the first run of {reference} with the same seed (a seed sets the initial weights "
        "and the data's split and order).",
    },
    "vi": {
        "seed": "seed",
        "hf": "GPT-2 của transformers",
        "loss": "{reference}: loss",
        "again": "{reference}, chạy lại",
        "mean": "trung bình",
        "sd": "độ lệch chuẩn",
        "caption": "GPT-2 124M, batch 128, {steps} bước trong vòng lặp trần, learning rate về mức sàn ở bước "
        "{max_steps} (như trong thí nghiệm tốc độ), trên {gpu}, torch {torch}, ngày {dates} (commit "
        "{commits}): loss huấn luyện trung bình trên {tail} bước cuối của {reference}, rồi "
        "mỗi lần chạy khác trừ đi lần chạy đầu của {reference} cùng seed (seed quyết định trọng số "
        "ban đầu, cách chia và thứ tự dữ liệu).",
    },
}


def tail_mean(curve: list, steps: int) -> float:
    """The mean of a [[step, value], ...] curve's last `steps` values."""
    last = curve[-steps:]
    return sum(value for _, value in last) / len(last)


def loss_curve_results(folder) -> list[dict]:
    """The results of `experiments/loss_curves/run.py` in `folder` (each `*curves*.json`), by name."""
    return [report.load(path) for path in sorted(Path(folder).glob("*curves*.json"))]


def reference_config(results: list[dict]) -> str:
    """The configuration the others are compared with: transformers' GPT-2 ("hf") where it ran, else (it
    ran out of memory at batch 128 on an 80 GB card) the first configuration that ran."""
    ran = [run["config"] for result in results for run in result["runs"] if run.get("loss_curve")]
    return "hf" if "hf" in ran else ran[0]


def first_reference_runs(results: list[dict]) -> dict[int, dict]:
    """The reference configuration's first run of each seed in `results`: {seed: run}."""
    reference, first = reference_config(results), {}
    for run in (run for result in results for run in result["runs"] if run.get("loss_curve")):
        if run["config"] == reference:
            first.setdefault(run["seed"], run)
    return first


def loss_against_reference(results: list[dict]) -> dict[str, dict[int, list[list[float]]]]:
    """Each run's loss curve minus that of the reference configuration's first run of the same seed
    (`reference_config`), step by step: {configuration: {seed: [[step, difference], ...]}}; under the
    reference's own name, its second run of a seed."""
    runs = [run for result in results for run in result["runs"] if run.get("loss_curve")]
    first = first_reference_runs(results)
    differences: dict[str, dict[int, list]] = {}
    for run in runs:
        reference = first.get(run["seed"])
        if reference is None or run is reference:
            continue
        theirs = dict(reference["loss_curve"])
        curve = [[step, loss - theirs[step]] for step, loss in run["loss_curve"] if step in theirs]
        differences.setdefault(run["config"], {})[run["seed"]] = curve
    return differences


def loss_curves_markdown(folder, lang: str = "en") -> str:
    """`experiments/loss_curves/run.py`'s results in `folder` as a Markdown table in `lang` (en, vi): per
    seed, the reference's loss over the last steps (`reference_config`) and each other configuration's
    difference from it; then the mean and standard deviation of each difference over the seeds."""
    results = loss_curve_results(folder)
    words, first = _LOSS_CURVES[lang], results[0]
    reference = reference_config(results)
    name = words["hf"] if reference == "hf" else f"“{reference}”"
    tail = first["tail_steps"]
    stamps = [report.stamp(r) for r in results]
    caption = words["caption"].format(
        steps=first["steps"],
        max_steps=first["max_steps"],
        gpu=stamps[0]["gpu"],
        torch=stamps[0]["torch"],
        dates=", ".join(sorted({s["date"] for s in stamps})),
        tail=tail,
        commits=", ".join(s["commit"] for s in stamps),
        reference=name,
    )
    differences = loss_against_reference(results)
    first_tail = {seed: tail_mean(run["loss_curve"], tail) for seed, run in first_reference_runs(results).items()}
    configs = list(differences)
    again = words["again"].format(reference=name)
    header = [words["seed"], words["loss"].format(reference=name), *(again if c == reference else c for c in configs)]
    lines = [caption, "", *report.markdown_header(header)]

    def decimals(x: float, sign: bool = True) -> str:
        x = round(x, 3) + 0.0  # no "-0.000"
        text = f"{x:+.3f}" if sign and x else f"{x:.3f}"
        return text.replace(".", ",") if lang == "vi" else text

    tails = {c: {seed: tail_mean(curve, tail) for seed, curve in by_seed.items()} for c, by_seed in differences.items()}
    rows = [
        [
            str(seed),
            decimals(first_tail[seed], sign=False),
            *(decimals(tails[c][seed]) if seed in tails[c] else "-" for c in configs),
        ]
        for seed in sorted(first_tail)
    ]
    for name, summary, sign in ((words["mean"], statistics.mean, True), (words["sd"], statistics.stdev, False)):
        rows.append(
            [name, "", *(decimals(summary(tails[c].values()), sign) if len(tails[c]) > 1 else "-" for c in configs)]
        )
    lines += [report.markdown_row(cells) for cells in rows]
    return "\n".join(lines)
