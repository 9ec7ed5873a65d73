"""GPT-2 trained through the kernel ladder's kernels (`train.py`'s files, e.g.
results/h100/kernel_ladder/train_t4.json), as the docs show it: `train_markdown` the table (en, vi), per
backend and seed how far its loss curve is from sdpa's of the same seed, and its tokens/s; `train_plot`
the curves' differences, step by step, one panel per file. Both read every number from the files."""

from __future__ import annotations

import statistics
from pathlib import Path

from vanilla_flash.results import plots, report, tables

TAIL = 10  # the last steps whose mean loss is compared between seeds
REFERENCE = "sdpa"  # every other run is compared with sdpa's first run of its seed

_WORDS = {
    "en": {
        "caption": "GPT-2 124M trained {steps} steps {terms}, on {gpu}, torch {torch}, {date} (commit {commit}), "
        "all in one process: for each seed, every backend from the same weights and data as sdpa's first "
        "run of that seed. The mean distance of its loss curve from that run's (mean over the steps of "
        "|loss − sdpa's loss|), seed by seed, and its tokens/s (mean over the seeds).",
        "t4": "on the T4 set's terms (fp16, sequence 512, batch 16 × 2, the shipped text sample, GPU memory "
        "capped at a T4's 15 GiB, from_scratch built as `compute_75` PTX, flash-attn {fa1})",
        "native": "on the T4 set's terms but natively (fp16, sequence 512, batch 16 × 2, the shipped text sample, "
        "the whole GPU, from_scratch built for this GPU, flash-attn {fa1})",
        "backend": "backend",
        "distance": "distance from sdpa, seeds {seeds}",
        "tokens": "tokens/s",
        "again": "sdpa again (the noise of one GPU)",
        "verdict": "from_scratch against sdpa run again: closer or as close at {again} of {n} seeds; over the "
        "seeds, {ours_mean} against sdpa's own {again_mean}.",
        "fa1": " flash_attn_1 against sdpa run again: {fa1_again} of {n}; from_scratch against flash-attn 1.0.9 "
        "(flash_attn_1): closer or as close at {fa1} of {n} seeds.",
        "speeds": " Its tokens/s: {speeds}.",
        "tail": " sdpa's loss over the last {tail} steps: {low} to {high} across the seeds (a spread of {spread}).",
        "speed": "{x}× {name}'s",
        "title": "Loss minus sdpa's, step by step ({terms})",
        "title_t4": "T4's terms",
        "title_native": "natively",
        "step": "step",
        "diff": "loss − sdpa's loss (same seed)",
    },
    "vi": {
        "caption": "GPT-2 124M huấn luyện {steps} bước {terms}, trên {gpu}, torch {torch}, ngày {date} (commit "
        "{commit}), tất cả trong một tiến trình: với mỗi seed, mọi backend bắt đầu từ cùng trọng số và dữ "
        "liệu với lần chạy sdpa đầu tiên của seed đó. Khoảng cách trung bình giữa đường loss của nó và của "
        "lần chạy ấy (trung bình theo bước của |loss − loss của sdpa|), theo từng seed, và số token/s "
        "(trung bình qua các seed).",
        "t4": "theo điều kiện của bộ T4 (fp16, chuỗi 512, batch 16 × 2, mẫu văn bản đi kèm, bộ nhớ GPU giới "
        "hạn ở 15 GiB như T4, from_scratch build thành PTX `compute_75`, flash-attn {fa1})",
        "native": "theo điều kiện của bộ T4 nhưng build riêng cho GPU (native) (fp16, chuỗi 512, batch 16 × 2, "
        "mẫu văn bản đi kèm, "
        "toàn bộ GPU, from_scratch build cho chính GPU này, flash-attn {fa1})",
        "backend": "backend",
        "distance": "khoảng cách tới sdpa, seed {seeds}",
        "tokens": "token/s",
        "again": "sdpa chạy lại (nhiễu của chính GPU)",
        "verdict": "from_scratch so với sdpa chạy lại: gần bằng hoặc gần hơn ở {again}/{n} seed; tính chung các "
        "seed, {ours_mean} so với {again_mean} của chính sdpa.",
        "fa1": " flash_attn_1 so với sdpa chạy lại: {fa1_again}/{n}; from_scratch so với flash-attn 1.0.9 "
        "(flash_attn_1): gần bằng hoặc gần hơn ở {fa1}/{n} seed.",
        "speeds": " Số token/s của nó: {speeds}.",
        "tail": " Loss của sdpa trên {tail} bước cuối: từ {low} đến {high} tuỳ seed (chênh nhau {spread}).",
        "speed": "{x}× của {name}",
        "title": "Loss trừ loss của sdpa, theo từng bước ({terms})",
        "title_t4": "điều kiện T4",
        "title_native": "build riêng cho GPU (native)",
        "step": "bước",
        "diff": "loss − loss của sdpa (cùng seed)",
    },
}
COLOURS = {"sdpa": "#9e9e9e", "from_scratch": "#bc4b51", "flash_attn_1": "#5b8e7d", "sdpa_efficient": "#f4a259"}


def differences(result: dict) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Per backend and seed: (step, loss − the first sdpa run's loss of that seed); sdpa's own second run
    is the backend `sdpa`."""
    first, out = {}, {}
    for run in result["runs"]:
        if run["status"] != "ok":
            continue
        if run["attn"] == REFERENCE and run["seed"] not in first:
            first[run["seed"]] = dict(run["loss_curve"])
            continue
        theirs = first.get(run["seed"])
        if theirs is not None:
            curve = [(step, loss - theirs[step]) for step, loss in run["loss_curve"] if step in theirs]
            out.setdefault(run["attn"], {})[run["seed"]] = curve
    return out


def distance(curve: list[tuple[int, float]]) -> float:
    return sum(abs(d) for _, d in curve) / len(curve)


def tokens_per_s(result: dict, attn: str) -> float:
    return statistics.mean(r["tokens_per_s"] for r in result["runs"] if r["attn"] == attn and r["status"] == "ok")


def train_markdown(path, lang: str = "en") -> str:
    """The training run's file as a Markdown table in `lang`, then how from_scratch compares."""
    result, w = report.load(path), _WORDS[lang]
    diffs, stamp = differences(result), report.stamp(result)
    fa1 = (result["environment"]["machine"].get("flash_attn") or "?").replace("+", " (") + ")"
    terms = w["t4" if result.get("t4_terms") else "native"].format(fa1=f"`{fa1}`")
    caption = w["caption"].format(steps=result["steps"], terms=terms, **stamp)
    seeds = sorted({seed for by_seed in diffs.values() for seed in by_seed})
    header = [w["backend"], w["distance"].format(seeds=", ".join(map(str, seeds))), w["tokens"]]
    lines = [caption, "", *report.markdown_header(header)]
    for attn in [REFERENCE, *(a for a in diffs if a != REFERENCE)]:
        by_seed = diffs.get(attn, {})
        cells = " / ".join(tables.ratio(distance(by_seed[s]), lang, 4) if s in by_seed else "-" for s in seeds)
        label = w["again"] if attn == REFERENCE else attn
        lines.append(report.markdown_row([label, cells, f"{tables.number(tokens_per_s(result, attn) / 1e3, lang)}k"]))
    ours = diffs.get("from_scratch", {})
    if ours and diffs.get(REFERENCE):

        def as_close(other: str, attn: str = "from_scratch") -> int:
            mine = diffs[attn]
            return sum(distance(mine[s]) <= distance(diffs[other][s]) for s in mine if s in diffs[other])

        def mean_distance(attn: str) -> str:
            return tables.ratio(statistics.mean(distance(c) for c in diffs[attn].values()), lang, 4)

        n = len(ours)
        verdict = w["verdict"].format(again=as_close(REFERENCE), n=n, ours_mean=mean_distance("from_scratch"),
                                      again_mean=mean_distance(REFERENCE))  # fmt: skip
        if diffs.get("flash_attn_1"):
            verdict += w["fa1"].format(fa1_again=as_close(REFERENCE, "flash_attn_1"), fa1=as_close("flash_attn_1"), n=n)
        ours_speed = tokens_per_s(result, "from_scratch")
        speed = {k: ours_speed / tokens_per_s(result, k) for k in ("flash_attn_1", "sdpa_efficient") if k in diffs}
        if speed:
            verdict += w["speeds"].format(
                speeds=", ".join(w["speed"].format(x=tables.ratio(x, lang), name=name) for name, x in speed.items())
            )
        firsts = {r["seed"]: r for r in reversed(result["runs"]) if r["attn"] == REFERENCE and r["status"] == "ok"}
        tails = [statistics.mean(loss for _, loss in r["loss_curve"][-TAIL:]) for r in firsts.values()]
        low, high = (tables.ratio(x, lang, 4) for x in (min(tails), max(tails)))
        spread = tables.ratio(max(tails) - min(tails), lang, 4)
        verdict += w["tail"].format(tail=min(TAIL, result["steps"]), low=low, high=high, spread=spread)
        lines += ["", verdict]
    return "\n".join(lines)


def train_plot(paths: list, out, lang: str = "en", dpi: int = 110) -> Path:
    """One panel per file: each backend's loss minus sdpa's first run of the same seed, a thin line a seed."""
    plt = plots.pyplot()
    w = _WORDS[lang]
    fig, axes = plt.subplots(1, len(paths), figsize=(5.5 * len(paths), 3.4), sharey=True, squeeze=False)
    for ax, path in zip(axes[0], paths, strict=True):
        result = report.load(path)
        for attn, by_seed in differences(result).items():
            for i, (_, curve) in enumerate(sorted(by_seed.items())):
                label = (w["again"] if attn == REFERENCE else attn) if i == 0 else None
                ax.plot(*zip(*curve, strict=True), color=COLOURS.get(attn, "#444444"), lw=0.9, label=label)
        ax.axhline(0, color="black", lw=0.5)
        terms = w["title_t4" if result.get("t4_terms") else "title_native"]
        ax.set_title(w["title"].format(terms=terms), fontsize=10)
        ax.set_xlabel(w["step"])
    axes[0][0].set_ylabel(w["diff"])
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return out
