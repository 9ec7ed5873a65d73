"""The speed experiment's Markdown tables, in English or Vietnamese, read from its results files
(written between markers by `tools/docs_tables.py`, checked by tests/test_docs.py):
`speed_markdown` (results/h200/speed.json), `plain_pytorch_markdown` (the plain-PyTorch GPT-2 that the
speed goal is measured against, results/h200/speed/plain_pytorch_profile.json), `loss_kernel_markdown`
(the loss kernel's settings, results/h200/speed/loss_kernel.json), `step_profile_markdown` (where a
step's GPU time goes, and its variants, results/h200/speed/best_profile.json), `loss_curves_markdown`
(transformers' and the vanilla model's loss over seeds, results/h200/speed/loss-curves/).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from vanilla_flash.results import report
from vanilla_flash.results.tables import number, ratio

_SPEED_COLUMNS = {
    "en": (
        "configuration",
        "Lightning tokens/s",
        "bare loop tokens/s",
        "Lightning / bare",
        "model TFLOP/s",
        "of the matmul",
        "peak GiB",
        "loss vs hf (mean abs. difference)",
    ),
    "vi": (
        "cấu hình",
        "token/s qua Lightning",
        "token/s vòng lặp trần",
        "Lightning / trần",
        "TFLOP/s của mô hình",
        "so với phép nhân ma trận",
        "đỉnh GiB",
        "loss so với hf (chênh lệch tuyệt đối trung bình)",
    ),
}


def speed_markdown(path, lang: str = "en") -> str:
    """`results/h200/speed.json` (`bench speed`) as a Markdown table in `lang` (en, vi), with the
    machine and the goal in a caption: `tools/docs_tables.py` writes it into the README and the docs."""
    result = report.load(path)
    header = _SPEED_COLUMNS[lang]
    env = result["environment"]["machine"]
    caption = {
        "en": f"{env['gpu_name']}, torch {env['torch']}, {result['when'][:10]} (commit {result['commit'][:7]}); "
        f"GPT-2 124M, seq 1024, bf16, torch.compile, cuDNN attention; goal {report.SPEED_GOAL / 1e3:.0f}k tokens/s "
        "through Lightning.",
        "vi": f"{env['gpu_name']}, torch {env['torch']}, {result['when'][:10]} (commit {result['commit'][:7]}); "
        f"GPT-2 124M, seq 1024, bf16, torch.compile, attention cuDNN; mục tiêu {report.SPEED_GOAL / 1e3:.0f}k token/s "
        "qua Lightning.",
    }[lang]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = report.valid_speed_rows(result)
    for r in rows:
        diff = r.get("mean_loss_diff_vs_hf")
        cells = [
            report.speed_label(r),
            f"{r['lightning_tokens_per_s'] / 1e3:.1f}k",
            f"{r['bare_tokens_per_s'] / 1e3:.1f}k",
            f"{r['lightning_over_bare']:.3f}",
            f"{r['model_tflops']:.0f}",
            f"{r.get('mfu_vs_matmul', 0):.0%}",
            f"{r['peak_mem_gib']:.1f}",
            "-" if diff is None else f"{diff:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    plain = _PLAIN_ROW[lang]
    for r in result.get("plain_pytorch", []):
        if r["status"] == "ok":
            cells = [
                plain["label"].format(batch=r["batch"]),
                "-",
                f"{r['tokens_per_s'] / 1e3:.1f}k",
                "-",
                "-",
                "-",
                f"{r['peak_mem_gib']:.1f}",
                "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if result.get("best_over_plain") and rows:
        best = max(rows, key=lambda r: r["lightning_tokens_per_s"])
        lines += [
            "",
            plain["verdict"].format(
                best=report.speed_label(best),
                ratio=number(result["best_over_plain"]["ratio"], lang, 4),
                goal=number(best["lightning_tokens_per_s"] / report.SPEED_GOAL, lang),
                goal_k=f"{report.SPEED_GOAL / 1e3:.0f}k",
            ),
        ]
    return "\n".join(lines)


_PLAIN_ROW = {
    "en": {
        "label": "plain PyTorch GPT-2, batch {batch} (its own loop: no Lightning, no transformers)",
        "verdict": "Best through Lightning ({best}) against the plain-PyTorch GPT-2 of the same run: {ratio}× "
        "(goal 1.05×); against the goal of {goal_k} tokens/s: {goal}.",
    },
    "vi": {
        "label": "GPT-2 PyTorch thuần, batch {batch} (vòng lặp riêng: không Lightning, không transformers)",
        "verdict": "Cấu hình nhanh nhất qua Lightning ({best}) so với GPT-2 PyTorch thuần trong cùng lần chạy: "
        "{ratio}× (mục tiêu 1,05×); so với mục tiêu {goal_k} token/s: {goal}.",
    },
}


_PLAIN_COLUMNS = {
    "en": (
        "batch",
        "gradient clipping",
        "vocabulary",
        "tokens/s",
        "peak GiB",
        "yes",
        "no",
        "GPT-2 124M in the plainest PyTorch, in a loop of its own, measured on {gpu}, torch {torch}, {date} "
        "(commit {commit}), after the third speed run, on its machine: nn.Linear, SDPA is_causal, tied "
        "head, F.cross_entropy, fused AdamW, bf16 autocast, torch.compile; no Lightning, no transformers.",
    ),
    "vi": (
        "batch",
        "cắt gradient",
        "từ vựng",
        "token/s",
        "đỉnh GiB",
        "có",
        "không",
        "GPT-2 124M viết bằng PyTorch thuần, trong vòng lặp riêng, đo trên {gpu}, torch {torch}, ngày {date} "
        "(commit {commit}), sau lần chạy tốc độ thứ ba, trên cùng máy: nn.Linear, SDPA is_causal, đầu ra "
        "gắn với embedding, F.cross_entropy, AdamW fused, autocast bf16, torch.compile; không Lightning, không "
        "transformers.",
    ),
}


def plain_pytorch_markdown(path, lang: str = "en") -> str:
    """The `plain_pytorch` rows of a `tools/gpu/profile_speed.py` result (GPT-2 124M in the plainest
    PyTorch, in a loop of its own: what the speed goal is measured against) as a Markdown table in
    `lang` (en, vi), with the machine in a caption."""
    result = report.load(path)
    *header, yes, no, caption = _PLAIN_COLUMNS[lang]
    m = result["environment"]["machine"]
    lines = [
        caption.format(gpu=m["gpu_name"], torch=m["torch"], date=result["when"][:10], commit=result["commit"][:7]),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in result["plain_pytorch"]:
        if r["status"] != "ok":
            continue
        cells = [
            str(r["batch"]),
            yes if r["grad_clip"] else no,
            str(r["vocab"]),
            f"{r['tokens_per_s'] / 1e3:.1f}k",
            f"{r['peak_mem_gib']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_LOSS_KERNEL = {
    "en": {
        "header": (
            "kernel",
            "columns per step",
            "warps",
            "programs per SM",
            "ms per chunk",
            "vs torch.compile",
            "max. gradient error",
        ),
        "compiled": "torch.compile's kernel (`loss: chunked`)",
        "form": "the kernel, form `{form}`, its fastest setting",
        "own": "the kernel, form `{form}`, the module's setting when measured",
        "caption": "The chunked loss's softmax step on one chunk ({rows} positions x {cols}, bf16), measured on "
        "{gpu}, torch {torch}, {date} (commit {commit}): {settings} settings of the Triton kernel, "
        "each checked against PyTorch; median of 20 runs.",
    },
    "vi": {
        "header": (
            "kernel",
            "số cột mỗi bước",
            "warp",
            "chương trình mỗi SM",
            "ms mỗi khối",
            "so với torch.compile",
            "sai số gradient lớn nhất",
        ),
        "compiled": "kernel của torch.compile (`loss: chunked`)",
        "form": "kernel, dạng `{form}`, thiết lập nhanh nhất",
        "own": "kernel, dạng `{form}`, thiết lập của module khi đo",
        "caption": "Bước softmax của loss chia khối trên một khối ({rows} vị trí x {cols}, bf16), đo trên {gpu}, "
        "torch {torch}, ngày {date} (commit {commit}): {settings} thiết lập của kernel Triton, mỗi "
        "thiết lập đều được so với PyTorch; trung vị của 20 lần chạy.",
    },
}


def loss_kernel_markdown(path, lang: str = "en") -> str:
    """`tools/gpu/loss_kernel_bench.py`'s result as a Markdown table in `lang` (en, vi): torch.compile's
    kernel, the fastest setting of each form of the Triton kernel, and the module's setting when it
    was measured, each against torch.compile's time."""
    result = report.load(path)
    words, m = _LOSS_KERNEL[lang], result["environment"]["machine"]
    timed = [r for r in result["kernel"] if "ms" in r]
    baseline = result["torch_compiled"]["ms"]
    lines = [
        words["caption"].format(
            rows=result["rows"],
            cols=result["cols"],
            gpu=m["gpu_name"],
            torch=m["torch"],
            date=result["when"][:10],
            commit=result["commit"][:7],
            settings=len(timed),
        ),
        "",
        "| " + " | ".join(words["header"]) + " |",
        "|" + "---|" * len(words["header"]),
    ]

    def line(label: str, r: dict) -> str:
        setting = [str(r[k]) if r.get(k) is not None else "-" for k in ("block", "warps", "programs_per_sm")]
        cells = [
            label,
            *setting,
            number(r["ms"], lang),
            number(r["ms"] / baseline, lang),
            number(r["max_grad_err"], lang, 2, scientific=True),
        ]
        return "| " + " | ".join(cells) + " |"

    lines.append(line(words["compiled"], result["torch_compiled"]))  # no setting: "-" in those columns
    forms = dict.fromkeys(r.get("form", "-") for r in timed)
    for form in forms:
        fastest = min((r for r in timed if r.get("form", "-") == form), key=lambda r: r["ms"])
        lines.append(line(words["form"].format(form=form), fastest))
    for r in timed:
        if r.get("own_setting"):
            lines.append(line(words["own"].format(form=r.get("form", "-")), r))
    return "\n".join(lines)


_STEP_PROFILE = {
    "en": {
        "header": ("bare-loop variant", "batch", "tokens/s", "vs as profiled", "peak GiB"),
        "caption": "One training step of {variant} (batch {batch}) on {gpu}, torch {torch}, {date} "
        "(commit {commit}), in the bare loop: {gpu_ms} ms of GPU time per step under torch.profiler, "
        "of which {groups}. Then the same step with one thing changed, each timed on its own.",
        "groups": {
            "matmul": "matmuls",
            "inductor (Triton)": "inductor's Triton kernels",
            "attention": "attention",
            "other": "other kernels",
            "optimizer": "the optimizer",
        },
    },
    "vi": {
        "header": ("biến thể vòng lặp trần", "batch", "token/s", "so với bản được đo", "đỉnh GiB"),
        "caption": "Một bước huấn luyện của {variant} (batch {batch}) trên {gpu}, torch {torch}, ngày {date} "
        "(commit {commit}), trong vòng lặp trần: {gpu_ms} ms thời gian GPU mỗi bước dưới torch.profiler, "
        "trong đó {groups}. Sau đó là cùng bước ấy với đúng một thay đổi, mỗi biến thể đo riêng.",
        "groups": {
            "matmul": "nhân ma trận",
            "inductor (Triton)": "kernel Triton của inductor",
            "attention": "attention",
            "other": "kernel khác",
            "optimizer": "bộ tối ưu",
        },
    },
}


def step_profile_markdown(path, lang: str = "en") -> str:
    """`tools/gpu/profile_speed.py`'s result as a Markdown table in `lang` (en, vi): where one step's GPU
    time goes (in the caption, per group of kernels) and the bare-loop variants against the step as
    profiled."""
    result = report.load(path)
    words, m, profile = _STEP_PROFILE[lang], result["environment"]["machine"], result["profile"]
    variant = profile["variant"]
    name = ", ".join(f"{k} {v}" for k, v in variant.items() if k != "batch")
    groups = ", ".join(
        f"{words['groups'].get(g, g)} {number(ms, lang)} ms"
        for g, ms in sorted(profile["groups_ms_per_step"].items(), key=lambda kv: -kv[1])
    )
    caption = words["caption"].format(
        variant=name,
        batch=variant["batch"],
        gpu=m["gpu_name"],
        torch=m["torch"],
        date=result["when"][:10],
        commit=result["commit"][:7],
        gpu_ms=number(profile["gpu_ms_per_step"], lang, 4),
        groups=groups,
    )
    lines = [caption, "", "| " + " | ".join(words["header"]) + " |", "|" + "---|" * len(words["header"])]
    measured = [v for v in result["variants"] if v["status"] == "ok"]
    base = measured[0]["tokens_per_s"]
    for v in measured:
        cells = [
            v["name"],
            str(v["batch"]),
            f"{v['tokens_per_s'] / 1e3:.1f}k",
            ratio(v["tokens_per_s"] / base, lang),
            f"{v['peak_mem_gib']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_LOSS_CURVES = {
    "en": {
        "seed": "seed",
        "hf": "transformers' GPT-2: loss",
        "again": "transformers' GPT-2 again",
        "mean": "mean",
        "sd": "standard deviation",
        "caption": "GPT-2 124M at batch 128 for {steps} steps in the bare loop, the learning rate at its floor at "
        "step {max_steps} (as in `bench speed`), on {gpu}, torch {torch}, {dates} (commits {commits}): "
        "the training loss averaged over the last {tail} steps, for transformers' GPT-2, then each "
        "other run minus transformers' first run of the same seed (a seed sets the initial weights "
        "and the data's split and order).",
    },
    "vi": {
        "seed": "seed",
        "hf": "GPT-2 của transformers: loss",
        "again": "GPT-2 của transformers, chạy lại",
        "mean": "trung bình",
        "sd": "độ lệch chuẩn",
        "caption": "GPT-2 124M, batch 128, {steps} bước trong vòng lặp trần, learning rate về mức sàn ở bước "
        "{max_steps} (như trong `bench speed`), trên {gpu}, torch {torch}, ngày {dates} (commit "
        "{commits}): loss huấn luyện trung bình trên {tail} bước cuối của GPT-2 của transformers, rồi "
        "mỗi lần chạy khác trừ đi lần chạy đầu của transformers cùng seed (seed quyết định trọng số "
        "ban đầu, cách chia và thứ tự dữ liệu).",
    },
}


def tail_mean(curve: list, steps: int) -> float:
    """The mean of a [[step, value], ...] curve's last `steps` values."""
    last = curve[-steps:]
    return sum(value for _, value in last) / len(last)


def loss_curve_results(folder) -> list[dict]:
    """The results of `tools/gpu/loss_curves.py` in `folder` (each `loss_curves*.json`), by name."""
    return [report.load(path) for path in sorted(Path(folder).glob("loss_curves*.json"))]


def first_hf_runs(results: list[dict]) -> dict[int, dict]:
    """Transformers' first run of each seed in `tools/gpu/loss_curves.py`'s `results`: {seed: run}."""
    first: dict[int, dict] = {}
    for run in (run for result in results for run in result["runs"] if run.get("loss_curve")):
        if run["config"] == "hf":
            first.setdefault(run["seed"], run)
    return first


def loss_against_hf(results: list[dict]) -> dict[str, dict[int, list[list[float]]]]:
    """Each run's loss curve minus that of transformers' first run of the same seed, step by step:
    {configuration: {seed: [[step, difference], ...]}}; under "hf", transformers' second run of a seed."""
    runs = [run for result in results for run in result["runs"] if run.get("loss_curve")]
    first = first_hf_runs(results)
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
    """`tools/gpu/loss_curves.py`'s results in `folder` as a Markdown table in `lang` (en, vi): per
    seed, transformers' GPT-2's loss over the last steps and each other configuration's difference
    from it; then the mean and standard deviation of each difference over the seeds."""
    results = loss_curve_results(folder)
    words, first = _LOSS_CURVES[lang], results[0]
    tail = first["tail_steps"]
    m = first["environment"]["machine"]
    dates = sorted({r["when"][:10] for r in results})
    caption = words["caption"].format(
        steps=first["steps"],
        max_steps=first["max_steps"],
        gpu=m["gpu_name"],
        torch=m["torch"],
        dates=", ".join(dates),
        tail=tail,
        commits=", ".join(r["commit"][:7] for r in results),
    )
    differences = loss_against_hf(results)
    hf_tail = {seed: tail_mean(run["loss_curve"], tail) for seed, run in first_hf_runs(results).items()}
    configs = list(differences)
    header = [words["seed"], words["hf"], *(words["again"] if c == "hf" else c for c in configs)]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def decimals(x: float, sign: bool = True) -> str:
        x = round(x, 3) + 0.0  # no "-0.000"
        text = f"{x:+.3f}" if sign and x else f"{x:.3f}"
        return text.replace(".", ",") if lang == "vi" else text

    tails = {c: {seed: tail_mean(curve, tail) for seed, curve in by_seed.items()} for c, by_seed in differences.items()}
    rows = [
        [
            str(seed),
            decimals(hf_tail[seed], sign=False),
            *(decimals(tails[c][seed]) if seed in tails[c] else "-" for c in configs),
        ]
        for seed in sorted(hf_tail)
    ]
    for name, summary, sign in ((words["mean"], statistics.mean, True), (words["sd"], statistics.stdev, False)):
        rows.append(
            [name, "", *(decimals(summary(tails[c].values()), sign) if len(tails[c]) > 1 else "-" for c in configs)]
        )
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
