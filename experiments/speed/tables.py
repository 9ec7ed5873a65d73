"""The speed experiment's Markdown tables and its plot (`speed_plot`, against `SPEED_GOAL`), in English
or Vietnamese, read from its results files (tables written between markers by `tools/docs_tables.py`,
checked by tests/test_docs.py):
`speed_markdown` (results/h200/speed.json), `plain_pytorch_markdown` (the plain-PyTorch GPT-2 that the
speed goal is measured against, results/h200/speed/plain_pytorch_profile.json), `loss_kernel_markdown`
(the loss kernel's settings, results/h200/speed/loss_kernel.json), `step_profile_markdown` (where a
step's GPU time goes, and its variants, results/h200/speed/best_profile.json). The loss curves over
seeds are `experiments.loss_curves.tables`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from vanilla_flash.results import plots, report
from vanilla_flash.results.tables import SPEED_GOAL_RATIO, number, ratio, speed_claims

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
    """`results/h200/speed.json` (`experiments.speed.run`) as a Markdown table in `lang` (en, vi), with the
    machine and the goal in a caption: `tools/docs_tables.py` writes it into the README and the docs."""
    result = report.load(path)
    header = _SPEED_COLUMNS[lang]
    caption = {
        "en": "{gpu}, torch {torch}, {date} (commit {commit}); GPT-2 124M, seq 1024, bf16, torch.compile, cuDNN's "
        "attention where a row names no other; goal {goal:.0f}k tokens/s through Lightning.",
        "vi": "{gpu}, torch {torch}, {date} (commit {commit}); GPT-2 124M, seq 1024, bf16, torch.compile, "
        "attention của cuDNN trừ khi hàng ghi tên kernel khác; mục tiêu {goal:.0f}k token/s qua Lightning.",
    }[lang].format(**report.stamp(result), goal=SPEED_GOAL / 1e3)
    lines = [caption, "", *report.markdown_header(header)]
    rows = valid_speed_rows(result)
    for r in rows:
        diff = r.get("mean_loss_diff_vs_hf")
        cells = [
            speed_label(r, lang),
            thousands(r["lightning_tokens_per_s"], lang),
            thousands(r["bare_tokens_per_s"], lang),
            ratio(r["lightning_over_bare"], lang),
            f"{r['model_tflops']:.0f}",
            f"{r.get('mfu_vs_matmul', 0):.0%}",
            ratio(r["peak_mem_gib"], lang, 1),
            "-" if diff is None else ratio(diff, lang),
        ]
        lines.append(report.markdown_row(cells))
    plain = _PLAIN_ROW[lang]
    for r in result.get("plain_pytorch", []):
        if r["status"] == "ok":
            cells = [plain_label(r, lang), "-", thousands(r["tokens_per_s"], lang), "-", "-", "-",
                     ratio(r["peak_mem_gib"], lang, 1), "-"]  # fmt: skip
            lines.append(report.markdown_row(cells))
    for key in ("best_over_plain", "best_over_plain_bf16_weights"):
        lines += _verdict(result.get(key), rows, plain, lang, bf16_weights=key.endswith("bf16_weights"))
    return "\n".join(lines)


def _verdict(against: dict | None, rows: list[dict], plain: dict, lang: str, bf16_weights: bool) -> list[str]:
    """The lines of one claim (`run._best_over_plain`): the best row against the fastest plain one."""
    best = next((r for r in rows if against and r["name"] == against["best"]), None)
    if best is None:
        return []
    lines = [
        "",
        (plain["bf16_prefix"] if bf16_weights else "")
        + plain["verdict"].format(
            best=speed_label(best, lang),
            batch=against["plain_batch"],
            clip=plain["clip" if against.get("grad_clip", True) else "no_clip"],
            ratio=number(against["ratio"], lang, 4),
            goal_ratio=ratio(SPEED_GOAL_RATIO, lang, 2),
            goal=number(best["lightning_tokens_per_s"] / SPEED_GOAL, lang),
            goal_k=f"{SPEED_GOAL / 1e3:.0f}k",
        ),
    ]
    if against.get("over_nanogpt_style"):
        lines[-1] += " " + plain["nanogpt_verdict"].format(ratio=number(against["over_nanogpt_style"], lang, 4))
    return lines


def thousands(tokens_per_s: float, lang: str) -> str:
    """Tokens/s in thousands, one decimal (549.7k; 549,7k in Vietnamese)."""
    return ratio(tokens_per_s / 1e3, lang, 1) + "k"


def plain_label(row: dict, lang: str = "en") -> str:
    """A plain-PyTorch row of a speed run: its batch, whether it clips, its SDPA kernel where named, and that
    it is written as nanoGPT writes it (another model: no biases, exact GELU) where it is."""
    words = _PLAIN_ROW[lang]
    label = words["label"].format(batch=row["batch"], clip=words["clip" if row["grad_clip"] else "no_clip"])
    label += words["kernel"].format(kernel=row["sdpa_kernel"]) if row.get("sdpa_kernel") else ""
    label += words["nanogpt"] if row.get("style") == "nanogpt" else ""
    return label + (words["bf16_weights"] if row.get("weights") == "bfloat16" else "")


_PLAIN_ROW = {
    "en": {
        "label": "plain PyTorch GPT-2, batch {batch}, {clip} (its own loop: no Lightning, no transformers)",
        "kernel": "; SDPA's {kernel} kernel",
        "nanogpt": "; written as nanoGPT writes it (no biases, exact GELU: not GPT-2's model, a reference)",
        "bf16_weights": "; weights in bf16 (pure bf16 training)",
        "clip": "clipping at 1.0",
        "no_clip": "no clipping",
        "verdict": "Best through Lightning ({best}) against the fastest plain-PyTorch GPT-2 of the same run that "
        "clips as it does (batch {batch}, {clip}): {ratio}× (goal {goal_ratio}×); against the goal of {goal_k} "
        "tokens/s: {goal}.",
        "bf16_prefix": "With the weights in bf16 on both sides (pure bf16 training, other numerics): ",
        "nanogpt_verdict": "Against the plain loop with the model written as nanoGPT writes it (no biases, exact "
        "GELU: less work per token than GPT-2's model, so a reference, not the claim): {ratio}×.",
    },
    "vi": {
        "label": "GPT-2 PyTorch thuần, batch {batch}, {clip} (vòng lặp riêng: không Lightning, không transformers)",
        "kernel": "; kernel {kernel} của SDPA",
        "nanogpt": "; viết như nanoGPT (không bias, GELU chính xác: không phải mô hình GPT-2, chỉ để tham chiếu)",
        "bf16_weights": "; trọng số bf16 (huấn luyện thuần bf16)",
        "clip": "cắt gradient ở 1,0",
        "no_clip": "không cắt gradient",
        "verdict": "Cấu hình nhanh nhất qua Lightning ({best}) so với GPT-2 PyTorch thuần nhanh nhất trong cùng lần "
        "chạy có cắt gradient như nó (batch {batch}, {clip}): {ratio}× (mục tiêu {goal_ratio}×); so với mục tiêu "
        "{goal_k} token/s: {goal}.",
        "bf16_prefix": "Với trọng số bf16 ở cả hai phía (huấn luyện thuần bf16, số học khác): ",
        "nanogpt_verdict": "So với vòng lặp PyTorch thuần với mô hình viết như nanoGPT (không bias, GELU chính xác: "
        "ít việc hơn mỗi token so với mô hình GPT-2, nên chỉ để tham chiếu, không phải tuyên bố): {ratio}×.",
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
    """The `plain_pytorch` rows of a `experiments/speed/step_profile.py` result (GPT-2 124M in the plainest
    PyTorch, in a loop of its own: what the speed goal is measured against) as a Markdown table in
    `lang` (en, vi), with the machine in a caption."""
    result = report.load(path)
    *header, yes, no, caption = _PLAIN_COLUMNS[lang]
    lines = [
        caption.format(**report.stamp(result)),
        "",
        *report.markdown_header(header),
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
        lines.append(report.markdown_row(cells))
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
    """`experiments/speed/loss_kernel.py`'s result as a Markdown table in `lang` (en, vi): torch.compile's
    kernel, the fastest setting of each form of the Triton kernel, and the module's setting when it
    was measured, each against torch.compile's time."""
    result = report.load(path)
    words = _LOSS_KERNEL[lang]
    timed = [r for r in result["kernel"] if "ms" in r]
    baseline = result["torch_compiled"]["ms"]
    lines = [
        words["caption"].format(
            rows=result["rows"],
            cols=result["cols"],
            settings=len(timed),
            **report.stamp(result),
        ),
        "",
        *report.markdown_header(words["header"]),
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
        return report.markdown_row(cells)

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
    """`experiments/speed/step_profile.py`'s result as a Markdown table in `lang` (en, vi): where one step's GPU
    time goes (in the caption, per group of kernels) and the bare-loop variants against the step as
    profiled."""
    result = report.load(path)
    words, profile = _STEP_PROFILE[lang], result["profile"]
    variant = profile["variant"]
    name = ", ".join(f"{k} {v}" for k, v in variant.items() if k != "batch")
    groups = ", ".join(
        f"{words['groups'].get(g, g)} {number(ms, lang)} ms"
        for g, ms in sorted(profile["groups_ms_per_step"].items(), key=lambda kv: -kv[1])
    )
    caption = words["caption"].format(
        variant=name,
        batch=variant["batch"],
        **report.stamp(result),
        gpu_ms=number(profile["gpu_ms_per_step"], lang, 4),
        groups=groups,
    )
    lines = [caption, "", *report.markdown_header(words["header"])]
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
        lines.append(report.markdown_row(cells))
    return "\n".join(lines)


SPEED_GOAL = 590_000  # tokens/s through Lightning for GPT-2 124M at seq 1024 on one H200 (the speed issue's goal)


def valid_speed_rows(result: dict) -> list[dict]:
    """The rows of a speed run's result that measured what they name (not failed, not annotated as
    invalid afterwards)."""
    return [r for r in result["rows"] if r["status"] == "ok" and not r.get("note", "").startswith("not a measurement")]


def speed_label(row: dict, lang: str = "en") -> str:
    """A speed run's (`experiments.speed.run`) row by its name, with its batch where the name does not say
    it; in Vietnamese, each comma-separated part of the name that `_NAME_VI` knows is translated."""
    name = row["name"] if "batch" in row["name"] else f"{row['name']}, batch {row['batch']}"
    if lang == "vi":
        name = ", ".join(_NAME_VI.get(part, part) for part in name.split(", "))
    return name


_NAME_VI = {  # the parts of the speed runs' row names, in Vietnamese (the glossary's terms)
    "chunked loss with Triton kernel": "loss tính theo đoạn bằng kernel Triton",
    "chunked loss": "loss tính theo đoạn",
    "full loss": "loss đầy đủ",
    "bf16 residual": "luồng residual bf16",
    "bf16 weights": "trọng số bf16",
    "run again": "chạy lại",
    "Triton GELU": "GELU bằng Triton",
    "MLP in cuBLASLt epilogues": "MLP trong epilogue của cuBLASLt",
    "hf": "GPT-2 của transformers",
}


_PLOT_WORDS = {
    "en": {
        "bare": "bare loop",
        "share": ", {share:.0%} of the matmul",
        "plain": "plain PyTorch GPT-2 (its own loop)",
        "goal": "goal {k:.0f}k",
        "goal_ratio": "goal: {ratio}× the fastest plain\nPyTorch GPT-2 that clips ({k:.0f}k)",
        "plain_row": "plain PyTorch, batch {batch}, {clip}",
        "nanogpt_row": ", nanoGPT's way (no biases)",
        "bf16_row": ", bf16 weights",
        "x": "thousand tokens per second (GPT-2 124M training, seq 1024)",
    },
    "vi": {
        "bare": "vòng lặp trần",
        "share": ", {share:.0%} của matmul",
        "plain": "GPT-2 PyTorch thuần (vòng lặp riêng)",
        "goal": "mục tiêu {k:.0f}k",
        "goal_ratio": "mục tiêu: {ratio}× GPT-2 PyTorch thuần\nnhanh nhất có cắt gradient ({k:.0f}k)",
        "plain_row": "PyTorch thuần, batch {batch}, {clip}",
        "nanogpt_row": ", kiểu nanoGPT (không bias)",
        "bf16_row": ", trọng số bf16",
        "x": "nghìn token mỗi giây (huấn luyện GPT-2 124M, chuỗi 1024)",
    },
}


def speed_plot(
    result: dict, path, goal: float | None = SPEED_GOAL, lang: str = "en", against_plain: bool = False
) -> Path | None:
    """Tokens/s per configuration of a speed run's result, through Lightning and in the bare loop,
    with the share of the same run's matmul each reaches through Lightning, the plain-PyTorch GPT-2
    of the same run (a loop of its own: one bar) and the goal: `goal` tokens/s, or with `against_plain`
    `SPEED_GOAL_RATIO` times the strongest plain row a claim is measured against (`speed_claims`); its
    words in `lang` (en, vi)."""
    w = _PLOT_WORDS[lang]
    goal_words = w["goal"].format(k=(goal or 0) / 1e3)
    if against_plain:
        strongest = speed_claims(result)[0]["plain_tokens_per_s"]
        goal = SPEED_GOAL_RATIO * strongest
        goal_words = w["goal_ratio"].format(ratio=ratio(SPEED_GOAL_RATIO, lang, 2), k=goal / 1e3)
    rows = valid_speed_rows(result)
    plain = [r for r in result.get("plain_pytorch", []) if r["status"] == "ok"]
    if not rows:
        return None
    plt = plots.pyplot()
    n = len(rows) + len(plain)
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.62 * n))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["bare_tokens_per_s"] / 1e3 for r in rows], 0.4, label=w["bare"], color="#bbb")
    ax.barh(
        [i - 0.2 for i in y], [r["lightning_tokens_per_s"] / 1e3 for r in rows], 0.4, label="Lightning", color="#e4572e"
    )

    def value(x: float, i: float, text: str, color: str = "white") -> None:
        """A bar's value written inside its end (the differences are a few %), clear of the goal's line."""
        ax.text(x / 1e3, i, f"{text} ", va="center", ha="right", fontsize=8, color=color)

    for i, r in zip(y, rows, strict=True):
        share = w["share"].format(share=r["mfu_vs_matmul"]) if r.get("mfu_vs_matmul") else ""
        value(r["lightning_tokens_per_s"], i - 0.2, thousands(r["lightning_tokens_per_s"], lang) + share)
        value(r["bare_tokens_per_s"], i + 0.2, thousands(r["bare_tokens_per_s"], lang), color="black")
    below = range(len(rows), n)
    ax.barh(
        list(below),
        [r["tokens_per_s"] / 1e3 for r in plain],
        0.4,
        color="#4a7fb5",
        label=w["plain"],
    )
    for i, r in zip(below, plain, strict=True):
        value(r["tokens_per_s"], i, thousands(r["tokens_per_s"], lang))
    if goal:
        ax.axvline(goal / 1e3, color="#333", linestyle="--", linewidth=1, label=goal_words)
    clip = {True: _PLAIN_ROW[lang]["clip"], False: _PLAIN_ROW[lang]["no_clip"]}
    labels = [speed_label(r, lang) for r in rows]
    labels += [
        w["plain_row"].format(batch=r["batch"], clip=clip[r["grad_clip"]])
        + (w["nanogpt_row"] if r.get("style") == "nanogpt" else "")
        + (w["bf16_row"] if r.get("weights") == "bfloat16" else "")
        for r in plain
    ]
    ax.set_yticks(range(n), [textwrap.fill(label, 34) for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max([goal or 0] + [r["bare_tokens_per_s"] for r in rows]) / 1e3 * 1.08)
    ax.set_xlabel(w["x"])
    if "environment" in result:
        ax.set_title("{gpu}, torch {torch}, {date}".format(**report.stamp(result)), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)  # beside the bars
    return plots.save(fig, path)
