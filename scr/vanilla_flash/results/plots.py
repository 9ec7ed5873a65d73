"""Pictures: how every figure is drawn and saved, and the loss curve of a run.

`pyplot()` gives matplotlib without a display and `save()` lays a figure out, writes it and frees
it; `report` draws the benchmark figures with them. `read_metrics()` stitches a run's CSV logs
across resumed sessions; `loss_curve()` draws them. `WORDS`: the benchmark figures' words, per language (the
docs draw each figure in English and in Vietnamese).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from vanilla_flash.files import write_atomic


def read_metrics(logs_dir: str | Path) -> list[dict]:
    """Rows of every `session-N/metrics.csv` under `logs_dir`, one history: where a later session
    resumed from an earlier step, the earlier session's rows from that step on are dropped (a killed
    run may have logged steps after its last checkpoint)."""
    sessions = sorted(Path(logs_dir).glob("session-*/metrics.csv"), key=lambda p: int(p.parent.name.split("-")[1]))
    runs = [[_numbers(row) for row in csv.DictReader(p.open())] for p in sessions]
    history: list[dict] = []
    for rows in runs:
        if not rows:
            continue
        first = min(r["step"] for r in rows if r.get("step") is not None)
        history = [r for r in history if r["step"] < first] + rows
    return history


def _numbers(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if value in ("", None):
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    if "step" in out:
        out["step"] = int(out["step"])
    return out


def pyplot():
    """matplotlib.pyplot, drawing to files (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Lay `fig` out, write it to `path` (PNG, folders made as needed) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    write_atomic(path, lambda partial: fig.savefig(partial, format=path.suffix.lstrip(".") or "png"))
    pyplot().close(fig)
    return path


def loss_curve(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Train and validation loss against step, as a PNG."""
    plt = pyplot()
    train = [(r["step"], r["train/loss"]) for r in history if "train/loss" in r]
    val = [(r["step"], r["val/loss"]) for r in history if "val/loss" in r]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(*zip(*train, strict=True), label="train", lw=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    top = loss_axis_top(train, val)
    if math.isfinite(top):
        ax.set_ylim(top=top * 1.05)
    return save(fig, path)


def loss_axis_top(train: list[tuple], val: list[tuple]) -> float:
    """The top of a loss plot: above the validation points (a run that overfits climbs there) and the first
    tenth of the training loss, not a later spike of it."""
    return max(v for _, v in train[: max(1, len(train) // 10)] + val)


# the plots' words, per language (the docs draw each figure in English and in Vietnamese)
WORDS = {
    "en": {
        "seq": "sequence length",
        "panel": "head dim {head_dim}, {causal}",
        "causal": "causal",
        "not_causal": "not causal",
        "speed_title": "Attention speed",
        "speed_y": "fwd+bwd TFLOP/s",
        "speedup_title": "Speed-up over eager attention",
        "speedup_y": "speed-up over eager (fwd+bwd)",
        "memory_x": "sequence length (batch 1)",
        "memory_y": "peak memory of fwd+bwd (MiB)",
        "memory_title": "Memory",
        "train_x": "sequence length (same tokens per step)",
        "train_y": "thousand tokens/s",
        "train_title": "GPT-2 {size} training",
        "step": "step",
        "loss": "loss (dots: validation)",
        "train": "train",
        "every_head_dim": "every head dim",
        "build_minutes": "minutes",
        "build_title": "flash-attn builds\nred: 2 cores, like a Colab VM, no GPU; green: 16 cores",
    },
    "vi": {
        "seq": "độ dài chuỗi",
        "panel": "head dim {head_dim}, {causal}",
        "causal": "causal",
        "not_causal": "không causal",
        "speed_title": "Tốc độ attention",
        "speed_y": "TFLOP/s xuôi+ngược",
        "speedup_title": "Tăng tốc so với attention eager",
        "speedup_y": "tăng tốc so với eager (xuôi+ngược)",
        "memory_x": "độ dài chuỗi (batch 1)",
        "memory_y": "bộ nhớ đỉnh của xuôi+ngược (MiB)",
        "memory_title": "Bộ nhớ",
        "train_x": "độ dài chuỗi (cùng số token mỗi bước)",
        "train_y": "nghìn token/s",
        "train_title": "Huấn luyện GPT-2 {size}",
        "step": "bước",
        "loss": "loss (chấm: validation)",
        "train": "huấn luyện",
        "every_head_dim": "mọi head dim",
        "build_minutes": "phút",
        "build_title": "Các bản build flash-attn\nđỏ: 2 nhân, như VM của Colab, không GPU; xanh: 16 nhân",
    },
}
