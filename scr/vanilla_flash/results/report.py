"""Plots and tables from benchmark result files, no GPU needed (`python -m vanilla_flash report`).

Result files are the JSON that `python -m vanilla_flash bench ...` writes: {"kind": ..., "environment":
..., "rows": [...], ...}. Plots go to PNG files, tables to Markdown.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vanilla_flash.results import plots

BACKEND_ORDER = [
    "eager",
    "sdpa_math",
    "sdpa",
    "sdpa_efficient",
    "sdpa_flash",
    "sdpa_cudnn",
    "flash_attn_1",
    "flash_attn_2",
    "flash_attn_4",
    "from_scratch",
    "auto",
]


def markdown_row(cells) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_header(header) -> list[str]:
    """A Markdown table's header row and the rule under it."""
    return [markdown_row(header), "|" + "---|" * len(header)]


def load(path) -> dict:
    return json.loads(Path(path).read_text())


def write_csv(rows: list[dict], path) -> Path:
    path = Path(path)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def stamp(result: dict) -> dict:
    """What every caption of a result says of where it comes from, read from its provenance: `gpu`,
    `torch`, `cuda`, `date` (YYYY-MM-DD) and `commit` (7 characters), each a string (\"?\" if unknown)."""
    m = result.get("environment", {}).get("machine", {})
    return {
        "gpu": m.get("gpu_name") or "CPU",
        "torch": m.get("torch") or "?",
        "cuda": m.get("cuda") or "?",
        "date": (result.get("when") or "?")[:10],
        "commit": (result.get("commit") or "?")[:7],
    }


def hardware(result: dict) -> str:
    m = result["environment"]["machine"]
    gpu = m.get("gpu_name") or "CPU"
    fa, fa4 = m.get("flash_attn") or "-", m.get("flash_attn_4") or "-"
    return f"{gpu}, torch {m.get('torch')}, flash-attn {fa}, flash-attn-4 {fa4}"


def _panel_figures(
    result: dict, out_dir, file_stem: str, title: str, ylabel: str, draw, lang: str = "en"
) -> list[Path]:
    """One PNG per dtype, one panel per (head dim, causal), two panels a row: `draw(ax, rows of that panel)`
    plots it."""
    plt = plots.pyplot()
    w = plots.WORDS[lang]
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dtype in sorted({r["dtype"] for r in rows}):
        panels = sorted({(r["head_dim"], r["causal"]) for r in rows if r["dtype"] == dtype})
        ncols = min(2, len(panels))
        nrows = -(-len(panels) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.2 * nrows), dpi=100, squeeze=False)
        for ax, (head_dim, causal) in zip(axes.flat, panels, strict=False):
            draw(ax, [r for r in rows if r["dtype"] == dtype and r["head_dim"] == head_dim and r["causal"] == causal])
            ax.set_xscale("log", base=2)
            ax.set_title(
                w["panel"].format(head_dim=head_dim, causal=w["causal" if causal else "not_causal"]), fontsize=9
            )
            ax.set_xlabel(w["seq"])
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{title}, {dtype} — {hardware(result)}", fontsize=9)
        fig.tight_layout()
        paths.append(plots.save(fig, out_dir / f"{file_stem}_{dtype}.png"))
    return paths


def _backends_in(rows: list[dict]) -> list[str]:
    """The backends of `rows`, in BACKEND_ORDER, then any it does not name: none is left out of a plot."""
    present = list(dict.fromkeys(r["backend"] for r in rows))
    return [b for b in BACKEND_ORDER if b in present] + [b for b in present if b not in BACKEND_ORDER]


def attention_plots(result: dict, out_dir, prefix: str = "attention", lang: str = "en") -> list[Path]:
    """TFLOP/s (fwd+bwd) against seq len per backend, one panel per head dim x causal, per dtype."""

    def draw(ax, sel):
        for name in _backends_in(sel):
            pts = sorted((r["seq"], r["fwd_bwd_tflops"]) for r in sel if r["backend"] == name)
            style = {"ls": "--", "color": "black"} if name == "auto" else {}
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name, **style)

    w = plots.WORDS[lang]
    return _panel_figures(result, out_dir, f"{prefix}_tflops", w["speed_title"], w["speed_y"], draw, lang)


def speedup_plots(result: dict, out_dir, prefix: str = "attention", lang: str = "en") -> list[Path]:
    """Speed-up of every backend over eager attention (fwd+bwd time ratio) against seq len; points
    where eager ran out of memory are left out."""

    def draw(ax, sel):
        eager = {r["seq"]: r["fwd_bwd_ms"] for r in sel if r["backend"] == "eager"}
        for name in [b for b in _backends_in(sel) if b != "eager"]:
            pts = sorted(
                (r["seq"], eager[r["seq"]] / r["fwd_bwd_ms"]) for r in sel if r["backend"] == name and r["seq"] in eager
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name)
        ax.axhline(1.0, color="grey", lw=0.8)

    w = plots.WORDS[lang]
    return _panel_figures(result, out_dir, f"{prefix}_speedup", w["speedup_title"], w["speedup_y"], draw, lang)


def memory_plot(result: dict, out_dir, name: str = "attention_memory.png", lang: str = "en") -> Path | None:
    plt, w = plots.pyplot(), plots.WORDS[lang]
    rows = [r for r in result.get("memory", []) if r.get("peak_mem_mib")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=100)
    for backend in _backends_in(rows):
        pts = sorted((r["seq"], r["peak_mem_mib"]) for r in rows if r["backend"] == backend)
        ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=backend)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(w["memory_x"])
    ax.set_ylabel(w["memory_y"])
    ax.set_title(f"{w['memory_title']}\n{hardware(result)}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return plots.save(fig, Path(out_dir) / name)


def train_plot(result: dict, out_dir, name: str = "train_tokens_per_s.png", lang: str = "en") -> Path | None:
    plt, w = plots.pyplot(), plots.WORDS[lang]
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    if not rows:
        return None
    seqs = sorted({r["seq"] for r in rows})
    backends = _backends_in(rows)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=100)
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        values = [
            next((r["tokens_per_s"] / 1e3 for r in rows if r["backend"] == backend and r["seq"] == s), 0) for s in seqs
        ]
        ax.bar([j + i * width for j in range(len(seqs))], values, width, label=backend)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(seqs))], [str(s) for s in seqs])
    ax.set_xlabel(w["train_x"])
    ax.set_ylabel(w["train_y"])
    ax.set_title(f"{w['train_title'].format(size=rows[0]['size'])}\n{hardware(result)}", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return plots.save(fig, Path(out_dir) / name)


def attention_table(result: dict, dtype: str = "bfloat16", head_dim: int = 64, causal: bool = True) -> str:
    rows = [r for r in result["rows"] if r["dtype"] == dtype and r["head_dim"] == head_dim and r["causal"] == causal]
    seqs = sorted({r["seq"] for r in rows})
    backends = _backends_in(rows)
    lines = [
        f"fwd+bwd TFLOP/s, {dtype}, head dim {head_dim}, {'causal' if causal else 'not causal'}",
        "",
        *markdown_header(["backend", *seqs]),
    ]
    for b in backends:
        cells = []
        for s in seqs:
            r = next((r for r in rows if r["backend"] == b and r["seq"] == s), None)
            if r is None:
                cells.append("")
            elif r["status"] == "ok":
                cells.append(f"{r['fwd_bwd_tflops']:.0f}")
            else:
                cells.append(r["status"])
        lines.append(markdown_row([b, *cells]))
    return "\n".join(lines)


def train_table(result: dict) -> str:
    lines = markdown_header(["seq", "backend", "tokens/s", "step ms", "MFU", "peak GiB"])
    for r in result["rows"]:
        if r["status"] == "ok":
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
            peak = f"{r['peak_mem_gib']:.1f}" if r.get("peak_mem_gib") else "-"  # not measured on a CPU
            lines.append(
                f"| {r['seq']} | {r['backend']} | {r['tokens_per_s'] / 1e3:.1f}k | {r['step_ms']:.1f} | {mfu} "
                f"| {peak} |"
            )
        else:
            lines.append(f"| {r['seq']} | {r['backend']} | {r['status'].split(':')[0]} | | | |")
    return "\n".join(lines)


def against_hf(rows: list[dict]) -> list[tuple[float, float] | None]:
    """Each `bench impl` row's tokens/s and peak memory over those of the fastest Hugging Face GPT-2
    row of the same run (None where a row did not run, or no Hugging Face row did; the memory ratio
    None where memory was not measured, as on a CPU)."""
    hf = [r for r in rows if r["model_impl"] == "hf" and r["status"] == "ok"]
    if not hf:
        return [None] * len(rows)
    base = max(hf, key=lambda r: r["tokens_per_s"])

    def memory(r):
        return r["peak_mem_gib"] / base["peak_mem_gib"] if r.get("peak_mem_gib") and base.get("peak_mem_gib") else None

    return [(r["tokens_per_s"] / base["tokens_per_s"], memory(r)) if r["status"] == "ok" else None for r in rows]


def impl_table(result: dict) -> str:
    """Hugging Face GPT-2 against flash-attn's GPT (`bench impl`), with each row's speed and memory
    over the fastest Hugging Face row, then the logits on the same weights."""
    lines = [
        *markdown_header(
            ["model", "attention", "fused parts", "tokens/s", "x HF speed", "MFU", "peak GiB", "x HF memory"]
        ),
    ]
    for r, ratio in zip(result["rows"], against_hf(result["rows"]), strict=True):
        fused = ", ".join(r["fused"]) or "-"
        if r["status"] == "ok":
            speed, memory = (f"{x:.2f}" if x is not None else "-" for x in ratio)
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
            peak = f"{r['peak_mem_gib']:.1f}" if r.get("peak_mem_gib") else "-"
            lines.append(
                f"| {r['model_impl']} | {r['attn']} | {fused} | {r['tokens_per_s'] / 1e3:.1f}k | {speed} | "
                f"{mfu} | {peak} | {memory} |"
            )
        else:
            lines.append(f"| {r['model_impl']} | {r['attn']} | {fused} | {r['status'][:60]} | | | | |")
    for c in result.get("logits", []):
        lines.append(
            f"\nsame weights, {c['dtype']}: max |logit difference| {c['max_abs_diff']:.3g}, same argmax "
            f"{c['same_argmax']:.1%}"
        )
    return "\n".join(lines)


def overhead_table(result: dict) -> str:
    """The Lightning trainer against a bare PyTorch loop (`bench overhead`)."""
    lines = [
        *markdown_header(
            ["attention", "compile", "batch x seq", "Lightning tokens/s", "bare loop tokens/s", "ratio", "peak GiB"]
        ),
    ]
    for r in result["rows"]:
        mode = r.get("compile_mode") or ("default" if r["compile"] else "off")
        lines.append(
            f"| {r['attention']} | {mode} | {r['batch']} x {r['seq_len']} | "
            f"{r['lightning_tokens_per_s'] / 1e3:.1f}k | {r['bare_tokens_per_s'] / 1e3:.1f}k | "
            f"{r['lightning_over_bare']:.3f} | {r['peak_mem_gib']:.1f} |"
        )
    return "\n".join(lines)


def runs_plot(run_dirs: list, path, title: str = "", lang: str = "en") -> Path:
    """Loss curves of several training runs (their run_dir) on one picture."""
    plt, w = plots.pyplot(), plots.WORDS[lang]
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=100)
    for run in run_dirs:
        summary = json.loads((Path(run) / "summary.json").read_text())
        history = plots.read_metrics(Path(run) / "logs")
        pts = [(r["step"], r["train/loss"]) for r in history if "train/loss" in r]
        ax.plot(*zip(*pts, strict=True), lw=1, label=f"{summary['attention']} ({w['train']})")
        val = [(r["step"], r["val/loss"]) for r in history if "val/loss" in r]
        if val:
            ax.plot(*zip(*val, strict=True), "o", ms=3, color=ax.lines[-1].get_color())
    ax.set_xlabel(w["step"])
    ax.set_ylabel(w["loss"])
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def runs_table(run_dirs: list) -> str:
    lines = [
        *markdown_header(["attention", "steps", "final train loss", "final val loss", "tokens/s", "MFU", "peak GiB"]),
    ]
    for run in run_dirs:
        s = json.loads((Path(run) / "summary.json").read_text())
        f = s["final"]
        mfu = f"{s['mfu']:.1%}" if s.get("mfu") else "-"
        lines.append(
            f"| {s['attention']} | {s['steps']} | {f['train/loss']:.3f} | {f['val/loss']:.3f} | "
            f"{(s['tokens_per_s'] or 0) / 1e3:.1f}k | {mfu} | {s.get('peak_mem_gib') or 0:.1f} |"
        )
    return "\n".join(lines)


def render(paths: list, out_dir) -> list[Path]:
    """Plots and a Markdown summary for each result file; training run folders (with a
    summary.json) are drawn together."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made, summary = [], []
    runs = [p for p in paths if (Path(p) / "summary.json").exists()]
    if runs:
        first = json.loads((Path(runs[0]) / "summary.json").read_text())
        machine = hardware(first)
        label = first.get("model") or f"GPT-2 {first['config']['model_size']}"  # "model": since 2026-12
        made.append(runs_plot(runs, out_dir / "train_loss_curves.png", f"{label} — {machine}"))
        summary.append(f"## training runs\n\n{machine}\n\n{runs_table(runs)}\n")
    for path in [p for p in paths if p not in runs]:
        result = load(path)
        kind = result.get("kind")
        summary.append(
            f"## {Path(path).name} ({kind})\n\n{hardware(result)}, {result['environment'].get('when', '')}\n"
        )
        if kind == "attention":
            made += attention_plots(result, out_dir)
            made += speedup_plots(result, out_dir)
            made.append(memory_plot(result, out_dir))
            for causal in (True, False):
                for head_dim in sorted({r["head_dim"] for r in result["rows"]}):
                    summary.append(attention_table(result, result["rows"][0]["dtype"], head_dim, causal) + "\n")
            if result.get("auto"):
                worst = min(result["auto"], key=lambda r: r["ratio"])
                summary.append(f"auto / fastest, worst point: {worst['ratio']:.3f} ({worst})\n")
        elif kind == "train":
            made.append(train_plot(result, out_dir))
            summary.append(train_table(result) + "\n")
        elif kind == "impl":
            summary.append(impl_table(result) + "\n")
        elif kind == "overhead":
            summary.append(overhead_table(result) + "\n")
    md = out_dir / "summary.md"
    md.write_text("\n".join(summary))
    return [p for p in made if p] + [md]


def speed_line(summary: dict) -> str:
    """A training run's speed in one line: tokens/s, and MFU and peak memory where a GPU measured them."""
    mfu = f"{summary['mfu']:.1%}" if summary.get("mfu") else "- (GPU only)"
    peak = f"{summary['peak_mem_gib']:.1f} GiB" if summary.get("peak_mem_gib") else "- (GPU only)"
    return f"tokens/s: {summary.get('tokens_per_s') or 0:,.0f}   MFU: {mfu}   peak memory: {peak}"


def builds_plot(path, out, package: str | None = None, lang: str = "en") -> Path:
    """The measured builds of `results/builds.json` (of `package`, or all) as bars of minutes, one per build,
    coloured by the machine's cores: what was built, and where."""
    plt, w = plots.pyplot(), plots.WORDS[lang]
    rows = [r for r in load(path)["builds"] if r["ok"] and (package is None or r["package"] == package)]
    labels, minutes, colours = [], [], []
    for r in rows:
        archs = ", ".join(f"{a} PTX" if a.startswith("compute_") else f"sm_{a}" for a in r["archs"])
        dims = f"head dim {', '.join(map(str, r['head_dims']))}" if r["head_dims"] else w["every_head_dim"]
        python = next((p for p in r["machine"].split(", ") if p.startswith("Python")), "")
        labels.append(f"{r['package'].removeprefix('flash-attn ')} · {archs} · {dims} · {python}")
        minutes.append(r["seconds"] / 60)
        colours.append("#bc4b51" if r["cores"] <= 2 else "#5b8e7d")
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.42 * len(rows)), dpi=100)
    ax.barh(range(len(rows)), minutes, color=colours)
    for y, m in enumerate(minutes):
        ax.text(m + 0.1, y, f"{m:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(minutes) * 1.12)
    ax.set_xlabel(w["build_minutes"])
    ax.set_title(w["build_title"], fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return plots.save(fig, out)


def extension_builds(path) -> list[dict]:
    """The build times in a `build_times.txt` of flash-attn 1.x's fused extensions: per extension its
    files, architectures, MAX_JOBS and seconds, as the build printed them."""
    import re

    builds: dict[str, dict] = {}
    for line in Path(path).read_text().splitlines():
        if started := re.match(r"building (\w+): (\d+) files from \S+, (sm_[\d, sm_]+), MAX_JOBS=(\d+)", line):
            name, files, archs, jobs = started.groups()
            builds[name] = {"extension": name, "files": int(files), "archs": archs, "max_jobs": int(jobs)}
        elif done := re.match(r"(\w+): (\d+) s, wheel", line):
            builds.setdefault(done[1], {"extension": done[1]})["seconds"] = int(done[2])
    return list(builds.values())


def fa_gpt_measurements(folder) -> str:
    """flash-attn's own GPT, as measured in `folder` (a `bench impl` run and its extension builds):
    how long each fused extension took to build, and each variant's speed against Hugging Face's
    GPT-2, read from the files (plain text, for a notebook cell)."""
    folder = Path(folder)
    result = load(folder / "impl.json")
    lines = [f"{hardware(result)} ({folder})", "", "extension builds:"]
    for b in extension_builds(folder / "build_times.txt"):
        lines.append(
            f"  {b['extension']:<20} {b.get('seconds', '?'):>4} s  ({b.get('files', '?')} files, "
            f"{b.get('archs', '?')}, MAX_JOBS={b.get('max_jobs', '?')})"
        )
    first = result["rows"][0]
    lines += ["", f"training GPT-2 {first['size']}, batch {first['batch']} x {first['seq']}:"]
    names = [f"{r['model_impl']:<10} {r['attn']:<13} fused: {', '.join(r['fused']) or '-'}" for r in result["rows"]]
    width = max(map(len, names))
    for r, name, ratio in zip(result["rows"], names, against_hf(result["rows"]), strict=True):
        if ratio is None:
            lines.append(f"  {name:<{width}}  {r['status'][:40]}")
        else:
            memory = f"memory x{ratio[1]:.2f}" if ratio[1] is not None else ""
            lines.append(f"  {name:<{width}}  {r['tokens_per_s'] / 1e3:6.1f}k tokens/s  x{ratio[0]:.2f} HF  {memory}")
    return "\n".join(lines)
