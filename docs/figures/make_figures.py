"""Draw the site's figures, in English and Vietnamese, and copy the measured plots.

    python docs/figures/make_figures.py            # from the repository root (or: make docs-figures)

Writes, for LANG in en and vi:

- docs/LANG/img/memory_hierarchy.png: the GPU memory hierarchy (A100 figures from the FlashAttention
  paper, arXiv 2205.14135, Fig. 1) and what standard attention and FlashAttention move through HBM.
- docs/LANG/img/tiling.png: the N x N score matrix cut into tiles, one row of query tiles against the
  key/value tiles, and the tiles a causal mask lets the kernel skip.
- docs/LANG/img/{train_loss_curves,attention_tflops_bfloat16,attention_speedup_bfloat16,attention_memory,
  train_tokens_per_s}.png: measured, drawn in LANG by the functions of `vanilla_flash.results.report` that
  `python -m vanilla_flash report` draws scr/img/'s with, from the same files in results/h100/
  (attention.json, train_bench.json, train_124m/).
- docs/LANG/img/kernel_ladder_h100.png: measured, drawn by `vanilla_flash.teach.ladder.plot` from
  results/h100/kernel_ladder/kernel_ladder.json (every bar read from the file): milliseconds of one attention
  forward per shape (log scale) for naive PyTorch, SDPA's kernels, flash-attn 1.0.9 and ssiu's Turing kernel
  as compute_75 PTX, and each rung of the kernel ladder.
- docs/LANG/img/kernel_ladder_backward_h100.png: the same for the forward and backward pass, from
  results/h100/kernel_ladder/backward.json.
- docs/LANG/img/kernel_ladder_train_h100.png: measured, drawn by `experiments.kernel_ladder.tables.train_plot`
  from results/h100/kernel_ladder/train_t4.json and train_native.json: GPT-2 trained through the ladder's
  kernels and the libraries', each run's loss minus sdpa's first run of the same seed, step by step;
  kernel_ladder_train_600_h100.png the same from train_t4_600.json (notebook 3's 600 steps).
- docs/LANG/img/builds.png: measured, every build of results/builds.json as a bar of minutes
  (`vanilla_flash.results.report.builds_plot`), red where it ran on 2 cores like a Colab VM.
- docs/LANG/img/speed_loss_h200.png: measured, drawn from the speed runs' files (SPEED_RUNS, every
  point read from them): the Lightning loss curve of the best configuration and of transformers'
  GPT-2 at batch 128, run by run.
- docs/LANG/img/loss_seeds_h200.png: measured, drawn from experiments/loss_curves/run.py's results in
  results/h200/speed/loss-curves/ (every point read from them): per configuration, each seed's loss
  minus transformers' GPT-2's of the same seed, step by step, and the mean over the seeds.
- docs/LANG/img/speed_h200.png: GPT-2 training speed per configuration, drawn in LANG by
  `experiments.speed.tables.speed_plot` from results/h200/speed.json (results/h200/speed.png is its English
  drawing, made by the run); docs/LANG/img/speed_h100.png the same from results/h100/speed.json, the run of the
  claim against the strongest plain-PyTorch GPT-2, its goal 1.05 times that GPT-2's tokens/s.

The drawings are deterministic: no random numbers, fixed size and DPI, and no software version in
the PNG metadata, so running this twice gives the same files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scr"), str(ROOT)]  # the package, and the experiments whose results it draws
from vanilla_flash.results import report, tables  # noqa: E402  (numbers written as the docs' tables write them)
from vanilla_flash.teach import ladder  # noqa: E402

from experiments.kernel_ladder import tables as kernel_ladder  # noqa: E402
from experiments.loss_curves import tables as loss_curves  # noqa: E402
from experiments.speed import tables as speed_tables  # noqa: E402

DOCS = ROOT / "docs"
H100 = ROOT / "results" / "h100"  # the files the report plots are drawn from
KERNEL_LADDER = ROOT / "results" / "h100" / "kernel_ladder" / "kernel_ladder.json"
LADDER_BACKWARD = ROOT / "results" / "h100" / "kernel_ladder" / "backward.json"  # its forward + backward pass
# GPT-2 trained through the ladder's kernels (experiments/kernel_ladder/train.py): on a T4's terms, natively
LADDER_TRAINING = [ROOT / "results" / "h100" / "kernel_ladder" / f"train_{terms}.json" for terms in ("t4", "native")]
LADDER_TRAINING_600 = ROOT / "results" / "h100" / "kernel_ladder" / "train_t4_600.json"  # notebook 3's 600 steps
LOSS_CURVES = ROOT / "results" / "h200" / "speed" / "loss-curves"  # experiments/loss_curves/run.py's results
# the speed runs whose loss curves speed_loss_h200.png draws (name in the legend: file)
SPEED_RUNS = {"last run": ROOT / "results/h200/speed.json",
              "fused-mlp-run": ROOT / "results/h200/speed/fused-mlp-run/speed.json",
              "fifth-run": ROOT / "results/h200/speed/fifth-run/speed.json",
              "fourth-run": ROOT / "results/h200/speed/fourth-run/speed.json"}  # fmt: skip
BEST = "vanilla, chunked loss with Triton kernel, batch 128, bf16 residual"  # its row's name in every one of them
# plots made by the run itself (or by `experiments.speed.tables.speed_plot` from its file), copied under another name
SPEED_H200 = ROOT / "results" / "h200" / "speed.json"
SPEED_H100 = ROOT / "results" / "h100" / "speed.json"
DPI = 110

# colours (colour-blind safe pairs)
HBM = "#f4a259"
SRAM = "#5b8e7d"
DRAM = "#bc4b51"
SKIP = "#d9d9d9"
DONE = "#8cb369"
DIAG = "#f4e285"
NOW = "#5b8e7d"

LABELS = {
    "en": {
        "hier_title": "GPU memory hierarchy (A100, FlashAttention paper)",
        "sram": "SRAM (on chip)\n19 TB/s, 20 MB",
        "hbm": "GPU HBM\n1.5 TB/s, 40 GB",
        "dram": "CPU DRAM\n12.8 GB/s, > 1 TB",
        "faster": "faster,\nsmaller",
        "std_title": "Standard attention: N×N matrices go through HBM",
        "flash_title": "FlashAttention: tiles stay in SRAM",
        "hbm_box": "HBM",
        "sram_box": "SRAM",
        "std_steps": [
            "read Q, K → write S = QKᵀ (N×N)",
            "read S → write P = softmax(S) (N×N)",
            "read P, V → write O = PV",
        ],
        "flash_steps": [
            "read tiles Qᵢ, Kⱼ, Vⱼ",
            "Sᵢⱼ, Pᵢⱼ, running max and sum: in SRAM",
            "write Oᵢ once (+ one log-sum-exp per row)",
        ],
        "tiling_title": "Tiling the score matrix S = QKᵀ (causal)",
        "q": "Q",
        "kt": "Kᵀ",
        "v": "V",
        "o": "O",
        "legend_done": "computed tile",
        "legend_diag": "diagonal tile: mask applied inside",
        "legend_skip": "above the diagonal: skipped",
        "legend_now": "query tile i, streamed over j",
        "outer": "outer loop: one query tile Qᵢ\nper thread block",
        "inner": "inner loop: Kⱼ, Vⱼ tiles\nstream through SRAM",
        "keys": "keys j →",
        "queries": "queries i →",
        "sl_title": "GPT-2 124M, batch 128, the same weights and data: the loss through Lightning, run by run",
        "sl_subtitle": "{gpu}; each line one run of bench speed (its file under results/h200/)",
        "sl_vanilla": "vanilla, the best configuration ({run})",
        "sl_hf": "transformers' GPT-2 ({run})",
        "sl_step": "step",
        "sl_loss": "training loss (nats/token)",
        "ls_title": "GPT-2 124M, batch 128: the loss minus transformers' GPT-2's of the same seed, step by step",
        "ls_subtitle": "{gpu}; a seed sets the initial weights and the data's split and order; bare loop, "
        "experiments/loss_curves/run.py",
        "ls_panel": "{name} ({n} seeds)",
        "ls_again": "transformers' GPT-2, run again",
        "ls_seed": "one seed",
        "ls_mean": "mean over the seeds",
        "ls_diff": "loss difference (nats/token)",
    },
    "vi": {
        "hier_title": "Phân cấp bộ nhớ GPU (A100, theo bài báo FlashAttention)",
        "sram": "SRAM (trên chip)\n19 TB/s, 20 MB",
        "hbm": "HBM của GPU\n1,5 TB/s, 40 GB",
        "dram": "DRAM của CPU\n12,8 GB/s, > 1 TB",
        "faster": "nhanh hơn,\nnhỏ hơn",
        "std_title": "Attention thông thường: ma trận N×N đi qua HBM",
        "flash_title": "FlashAttention: các khối (tile) nằm lại trong SRAM",
        "hbm_box": "HBM",
        "sram_box": "SRAM",
        "std_steps": [
            "đọc Q, K → ghi S = QKᵀ (N×N)",
            "đọc S → ghi P = softmax(S) (N×N)",
            "đọc P, V → ghi O = PV",
        ],
        "flash_steps": [
            "đọc các khối Qᵢ, Kⱼ, Vⱼ",
            "Sᵢⱼ, Pᵢⱼ, max và tổng tích luỹ: trong SRAM",
            "ghi Oᵢ một lần (+ một log-sum-exp mỗi hàng)",
        ],
        "tiling_title": "Chia khối ma trận điểm S = QKᵀ (causal)",
        "q": "Q",
        "kt": "Kᵀ",
        "v": "V",
        "o": "O",
        "legend_done": "khối đã tính",
        "legend_diag": "khối trên đường chéo: áp mask bên trong",
        "legend_skip": "phía trên đường chéo: bỏ qua",
        "legend_now": "khối query i, duyệt lần lượt theo j",
        "outer": "vòng ngoài: mỗi thread block\nnhận một khối query Qᵢ",
        "inner": "vòng trong: các khối Kⱼ, Vⱼ\nlần lượt đi qua SRAM",
        "keys": "key j →",
        "queries": "query i →",
        "sl_title": "GPT-2 124M, batch 128, cùng trọng số và dữ liệu: loss qua Lightning, từng lần chạy",
        "sl_subtitle": "{gpu}; mỗi đường là một lần chạy bench speed (tệp của nó trong results/h200/)",
        "sl_vanilla": "vanilla, cấu hình tốt nhất ({run})",
        "sl_hf": "GPT-2 của transformers ({run})",
        "sl_step": "bước",
        "sl_loss": "loss huấn luyện (nats/token)",
        "ls_title": "GPT-2 124M, batch 128: loss trừ đi loss của GPT-2 của transformers cùng seed, từng bước",
        "ls_subtitle": "{gpu}; seed quyết định trọng số ban đầu, cách chia và thứ tự dữ liệu; vòng lặp trần, "
        "experiments/loss_curves/run.py",
        "ls_panel": "{name} ({n} seed)",
        "ls_again": "GPT-2 của transformers, chạy lại",
        "ls_seed": "một seed",
        "ls_mean": "trung bình các seed",
        "ls_diff": "chênh lệch loss (nats/token)",
    },
}


def _style() -> None:
    plt.rcParams.update(
        {
            "font.family": "DejaVu Sans",
            "font.size": 10,
            "savefig.facecolor": "white",
            "figure.facecolor": "white",
            "svg.hashsalt": "vanilla-flash",
        }
    )


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _box(ax, x, y, w, h, text, color, fontsize=9, text_color="black"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.05", fc=color, ec="#333333"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=text_color)


def _arrow(ax, start, end, color="#333333"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2, color=color))


def memory_hierarchy(lang: str) -> plt.Figure:
    t = LABELS[lang]
    fig = plt.figure(figsize=(11.0, 5.4))
    # left: the hierarchy, fastest and smallest on top
    ax = fig.add_axes((0.01, 0.02, 0.34, 0.86))
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(0, 1)
    ax.axis("off")
    levels = [(0.02, 0.88, DRAM, t["dram"]), (0.35, 0.66, HBM, t["hbm"]), (0.68, 0.44, SRAM, t["sram"])]
    for bottom, width, color, text in levels:
        _box(ax, 0.46 - width / 2, bottom, width, 0.28, text, color, fontsize=9, text_color="white")
    _arrow(ax, (0.96, 0.05), (0.96, 0.93))
    ax.text(0.985, 0.5, t["faster"], ha="left", va="center", fontsize=8, rotation=90)
    fig.text(0.18, 0.93, t["hier_title"], ha="center", fontsize=10, weight="bold", wrap=True)

    # right: what goes through HBM, standard attention above, FlashAttention below
    for bottom, title, steps, flash in (
        (0.5, t["std_title"], t["std_steps"], False),
        (0.02, t["flash_title"], t["flash_steps"], True),
    ):
        ax = fig.add_axes((0.40, bottom, 0.59, 0.44))
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(0, 1)
        ax.axis("off")
        ax.text(0.5, 0.97, title, ha="center", va="top", fontsize=10, weight="bold")
        _box(ax, 0.0, 0.03, 0.12, 0.8, t["hbm_box"], HBM, fontsize=11, text_color="white")
        _box(ax, 0.88, 0.03, 0.12, 0.8, t["sram_box"], SRAM, fontsize=11, text_color="white")
        for k, step in enumerate(steps):
            y = 0.66 - k * 0.25
            if flash and k == 1:  # stays on chip
                ax.text(0.5, y, step, ha="center", va="center", fontsize=8.5, style="italic", color=SRAM)
                continue
            heavy = not flash and k < 2
            color = DRAM if heavy else "#333333"
            if flash:  # one direction: tiles in, output out
                start, end = ((0.13, y), (0.87, y)) if k == 0 else ((0.87, y), (0.13, y))
                _arrow(ax, start, end, color=color)
            else:
                _arrow(ax, (0.13, y), (0.87, y), color=color)
                _arrow(ax, (0.87, y - 0.05), (0.13, y - 0.05), color=color)
            ax.text(0.5, y + 0.025, step, ha="center", va="bottom", fontsize=8.5, color=color)
    return fig


def tiling(lang: str) -> plt.Figure:
    t = LABELS[lang]
    n = 8  # tiles per side
    row = 5  # the query tile being processed
    fig, ax = plt.subplots(figsize=(9.0, 7.0))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01)
    ax.set_xlim(-2.6, n + 6.4)
    ax.set_ylim(-3.0, n + 2.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(t["tiling_title"], fontsize=12, weight="bold")

    # the score matrix, query tile 0 at the top
    for i in range(n):
        y = n - 1 - i
        for j in range(n):
            if j > i:
                color, hatch = SKIP, "//"
            elif j == i:
                color, hatch = DIAG, None
            else:
                color, hatch = DONE, None
            ax.add_patch(Rectangle((j, y), 1, 1, fc=color, ec="#333333", lw=0.8, hatch=hatch))
        for j in range(row + 1):
            if i == row:
                ax.add_patch(Rectangle((j, y), 1, 1, fc="none", ec=NOW, lw=2.6))
                ax.text(j + 0.5, y + 0.5, f"S{_sub(i)}{_sub(j)}", ha="center", va="center", fontsize=8)
    # Q on the left, K^T on top, V and O on the right
    for i in range(n):
        y = n - 1 - i
        ax.add_patch(Rectangle((-1.5, y), 0.9, 1, fc=NOW if i == row else "#e8e8e8", ec="#333333"))
        ax.add_patch(Rectangle((n + 0.6, y), 0.9, 1, fc=NOW if i <= row else "#e8e8e8", ec="#333333"))
        ax.add_patch(Rectangle((n + 2.0, y), 0.9, 1, fc=NOW if i == row else "#e8e8e8", ec="#333333"))
    for j in range(n):
        ax.add_patch(Rectangle((j, n + 0.3), 1, 0.8, fc=NOW if j <= row else "#e8e8e8", ec="#333333"))
    ax.text(-1.05, n + 0.2, t["q"], ha="center", fontsize=12, weight="bold")
    ax.text(-0.35, n + 0.7, t["kt"], ha="right", va="center", fontsize=12, weight="bold")
    ax.text(n + 1.05, n + 0.2, t["v"], ha="center", fontsize=12, weight="bold")
    ax.text(n + 2.45, n + 0.2, t["o"], ha="center", fontsize=12, weight="bold")
    ax.text(-1.05, n - row - 0.5, f"Q{_sub(row)}", ha="center", va="center", fontsize=9, color="white")
    ax.text(n + 2.45, n - row - 0.5, f"O{_sub(row)}", ha="center", va="center", fontsize=9, color="white")
    ax.text(n / 2, -0.5, t["keys"], ha="center", va="center", fontsize=9)
    ax.text(-2.0, n / 2, t["queries"], ha="center", va="center", rotation=270, fontsize=9)

    # the two loops
    ax.text(n + 3.1, n - row - 0.5, t["outer"], ha="left", va="center", fontsize=8.5)
    _arrow(ax, (0.05, n + 1.35), (row + 0.95, n + 1.35), color=NOW)
    ax.text(0.05, n + 1.55, t["inner"].replace("\n", " "), ha="left", va="bottom", fontsize=8.5)

    handles = [
        Rectangle((0, 0), 1, 1, fc=DONE, ec="#333333"),
        Rectangle((0, 0), 1, 1, fc=DIAG, ec="#333333"),
        Rectangle((0, 0), 1, 1, fc=SKIP, ec="#333333", hatch="//"),
        Rectangle((0, 0), 1, 1, fc="white", ec=NOW, lw=2.6),
    ]
    names = [t["legend_done"], t["legend_diag"], t["legend_skip"], t["legend_now"]]
    ax.legend(handles, names, loc="lower center", ncol=2, fontsize=8.5, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def speed_loss_h200(lang: str, runs: dict[str, Path] = SPEED_RUNS) -> plt.Figure:
    """The Lightning loss curve of the best configuration and of transformers' GPT-2 at batch 128 in
    each speed run (every point read from the run's file): how far the two models part, beside how
    far two runs of one model part."""
    t = LABELS[lang]
    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    fig.subplots_adjust(left=0.08, right=0.99, top=0.86, bottom=0.3)
    styles = ("-", "--", ":", "-.")
    gpu = "?"
    for (run, path), style in zip(runs.items(), styles, strict=False):
        result = json.loads(path.read_text())
        gpu = result["environment"]["machine"].get("gpu_name")
        for row in result["rows"]:
            if row.get("status") != "ok" or row.get("batch") != 128 or not row.get("loss_curve"):
                continue
            if row["name"] == BEST:
                label, color = t["sl_vanilla"].format(run=run), DRAM
            elif row["model_impl"] == "hf":
                label, color = t["sl_hf"].format(run=run), "#3d5a80"
            else:
                continue
            steps, losses = zip(*row["loss_curve"], strict=True)
            ax.plot(steps, losses, style, color=color, lw=1.4, label=label, marker="o", ms=2.5)
    ax.set_xlabel(t["sl_step"])
    ax.set_ylabel(t["sl_loss"])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: tables.number(y, lang, 2)))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(t["sl_title"], fontsize=11, weight="bold", y=0.97)
    fig.text(0.5, 0.895, t["sl_subtitle"].format(gpu=gpu), ha="center", fontsize=8.5)
    return fig


def loss_seeds_h200(lang: str, folder: Path = LOSS_CURVES) -> plt.Figure:
    """Per configuration of experiments/loss_curves/run.py, each seed's loss minus that of transformers'
    first run of the same seed, step by step (thin lines), and their mean over the seeds (thick):
    whether a configuration sits above or below transformers' GPT-2, and how far runs stray anyway."""
    t = LABELS[lang]
    results = loss_curves.loss_curve_results(folder)
    differences = loss_curves.loss_against_reference(results)
    fig, axes = plt.subplots(1, len(differences), figsize=(9.6, 4.2), sharey=True, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.8, bottom=0.24, wspace=0.06)
    for ax, (config, by_seed) in zip(axes[0], differences.items(), strict=True):
        for curve in by_seed.values():
            ax.plot(*zip(*curve, strict=True), color="#9aa5b1", lw=0.8)
        steps = sorted(set.intersection(*(set(s for s, _ in curve) for curve in by_seed.values())))
        mean = [sum(dict(curve)[s] for curve in by_seed.values()) / len(by_seed) for s in steps]
        ax.plot(steps, mean, color=DRAM, lw=2.2)
        ax.axhline(0, color="black", lw=0.8)
        name = t["ls_again"] if config == "hf" else config
        ax.set_title(t["ls_panel"].format(name=name, n=len(by_seed)), fontsize=9.5)
        ax.set_xlabel(t["sl_step"])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(t["ls_diff"])
    axes[0][0].yaxis.set_major_formatter(FuncFormatter(lambda y, _: tables.number(y, lang, 2)))
    handles = [plt.Line2D([], [], color="#9aa5b1", lw=0.8), plt.Line2D([], [], color=DRAM, lw=2.2)]
    fig.legend(handles, [t["ls_seed"], t["ls_mean"]], loc="lower center", ncol=2, fontsize=8.5, frameon=False)
    fig.suptitle(t["ls_title"], fontsize=11, weight="bold", y=0.97)
    gpu = results[0]["environment"]["machine"].get("gpu_name")
    fig.text(0.5, 0.895, t["ls_subtitle"].format(gpu=gpu), ha="center", fontsize=8.5)
    return fig


def _sub(k: int) -> str:
    return "".join("₀₁₂₃₄₅₆₇₈₉"[int(c)] for c in str(k))


def measured_h100(lang: str, img: Path) -> None:
    """The H100's attention benchmark, training-speed and loss-curve plots, in `lang`, as `python -m vanilla_flash
    report` draws them (report.render) from the same files."""
    attention = report.load(H100 / "attention.json")
    report.attention_plots(attention, img, lang=lang)
    report.speedup_plots(attention, img, lang=lang)
    report.memory_plot(attention, img, lang=lang)
    report.train_plot(report.load(H100 / "train_bench.json"), img, lang=lang)
    runs = sorted(p.parent for p in (H100 / "train_124m").glob("*/summary.json"))
    first = json.loads((runs[0] / "summary.json").read_text())
    label = first.get("model") or f"GPT-2 {first['config']['model_size']}"
    report.runs_plot(runs, img / "train_loss_curves.png", f"{label} — {report.hardware(first)}", lang=lang)


def main() -> None:
    _style()
    for lang in LABELS:
        img = DOCS / lang / "img"
        _save(memory_hierarchy(lang), img / "memory_hierarchy.png")
        _save(tiling(lang), img / "tiling.png")
        ladder.plot(json.loads(KERNEL_LADDER.read_text()), img / "kernel_ladder_h100.png", lang)
        ladder.plot(json.loads(LADDER_BACKWARD.read_text()), img / "kernel_ladder_backward_h100.png", lang)
        kernel_ladder.train_plot(LADDER_TRAINING, img / "kernel_ladder_train_h100.png", lang, dpi=90)
        kernel_ladder.train_plot([LADDER_TRAINING_600], img / "kernel_ladder_train_600_h100.png", lang, dpi=90)
        _save(speed_loss_h200(lang), img / "speed_loss_h200.png")
        _save(loss_seeds_h200(lang), img / "loss_seeds_h200.png")
        measured_h100(lang, img)
        report.builds_plot(ROOT / "results" / "builds.json", img / "builds.png", lang=lang)
        speed_tables.speed_plot(json.loads(SPEED_H200.read_text()), img / "speed_h200.png", lang=lang)
        speed_tables.speed_plot(
            json.loads(SPEED_H100.read_text()), img / "speed_h100.png", lang=lang, against_plain=True
        )
        for path in sorted(img.glob("*.png")):
            print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
