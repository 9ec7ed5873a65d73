"""The speed experiment's probes as Markdown tables: `experiments/speed/plain_probe.py`'s (`plain_probe_markdown`:
the plain-PyTorch GPT-2 of the speed run written otherwise one thing at a time, each row's tokens/s against the
first row's and where its step's GPU time goes, kernels grouped, from the profiler) and
`experiments/speed/step_gaps.py`'s (`step_gaps_markdown`: where the GPU waits in a step, through Lightning and in
the bare loop)."""

from __future__ import annotations

from vanilla_flash.results import report
from vanilla_flash.results.tables import ratio

from experiments.speed.tables import thousands

GROUPS = ("matmul", "attention", "inductor (Triton)")
_WORDS = {
    "en": {
        "header": (
            "the plain GPT-2",
            "tokens/s",
            "against the first row",
            "GPU ms per step",
            "matmul",
            "attention",
            "Triton (torch.compile)",
        ),  # fmt: skip
        "caption": "The speed run's plain-PyTorch GPT-2 written otherwise one thing at a time, batch {batch}, "
        "no clipping, on {gpu}, torch {torch}, {date} (commit {commit}), one process; GPU time per step from two "
        "steps under the profiler, in milliseconds.",
    },
    "vi": {
        "header": (
            "GPT-2 PyTorch thuần",
            "token/s",
            "so với hàng đầu",
            "ms GPU mỗi bước",
            "matmul",
            "attention",
            "Triton (torch.compile)",
        ),  # fmt: skip
        "caption": "GPT-2 PyTorch thuần của lần chạy tốc độ, mỗi lần viết khác một điều, batch {batch}, không cắt "
        "gradient, trên {gpu}, torch {torch}, ngày {date} (commit {commit}), một tiến trình; thời gian GPU mỗi "
        "bước đo bằng profiler trên hai bước, tính bằng mili giây.",
    },
}
_VARIANT_VI = {
    "as in the speed run": "như trong lần chạy tốc độ",
    "no biases (nanoGPT's training default)": "không bias (mặc định huấn luyện của nanoGPT)",
    "exact GELU": "GELU chính xác",
    "logits left to autocast, no explicit float()": "logits để autocast lo, không float() tường minh",
    "PyTorch's own SDPA kernel choice": "kernel SDPA do PyTorch tự chọn",
    "all four as nanoGPT has them": "cả bốn như nanoGPT",
    "weights held in bfloat16 (pure bf16 training, not mixed precision)": "trọng số giữ ở bfloat16 (huấn luyện "
    "thuần bf16, không phải mixed precision)",
    "launches replayed as CUDA graphs (compile mode reduce-overhead)": "các lần gọi kernel phát lại bằng CUDA "
    "graph (chế độ compile reduce-overhead)",
    "as in the speed run, again": "như trong lần chạy tốc độ, chạy lại",
}


def plain_probe_markdown(path, lang: str = "en") -> str:
    """The probe's rows in `lang` (en, vi), with the machine and the batch in a caption."""
    result = report.load(path)
    words = _WORDS[lang]
    lines = [words["caption"].format(batch=result["batch"], **report.stamp(result)), ""]
    lines += report.markdown_header(words["header"])
    first = result["rows"][0]["tokens_per_s"]
    for r in result["rows"]:
        groups = r.get("groups_ms_per_step", {})
        cells = [
            _VARIANT_VI.get(r["variant"], r["variant"]) if lang == "vi" else r["variant"],
            thousands(r["tokens_per_s"], lang),
            ratio(r["tokens_per_s"] / first, lang),
            ratio(r["gpu_ms_per_step"], lang, 1),
            *(ratio(groups[g], lang, 1) if g in groups else "-" for g in GROUPS),
        ]
        lines.append(report.markdown_row(cells))
    return "\n".join(lines)


_GAP_WORDS = {
    "en": {
        "header": ("loop", "ms a step", "GPU busy", "GPU idle", "waits for the GPU a step", "longest gaps (ms)",
                   "the work after them"),
        "loops": {"lightning": "Lightning", "bare": "bare loop"},
        "caption": "Where the GPU waits: {variant}{overrides}, {steps}each loop under the profiler after the warm-up, "
        "on {gpu}, torch {torch}, {date} (commit {commit}); milliseconds per step. A wait for the GPU "
        "is a call that blocks until the GPU has run everything it was given (`set_sync_debug_mode`).",
        "overrides": " (set here: {pairs})",
        "steps": "{n} steps of ",
    },
    "vi": {
        "header": ("vòng lặp", "ms mỗi bước", "GPU bận", "GPU rảnh", "lần chờ GPU mỗi bước",
                   "khoảng rảnh dài nhất (ms)", "việc chạy ngay sau"),
        "loops": {"lightning": "Lightning", "bare": "vòng lặp trần"},
        "caption": "GPU chờ ở đâu: {variant}{overrides}, {steps}mỗi vòng lặp dưới profiler sau khởi động, "
        "trên {gpu}, torch {torch}, ngày {date} (commit {commit}); mili giây mỗi bước. Một lần chờ GPU là một lời "
        "gọi dừng lại tới khi GPU chạy xong mọi việc đã nhận (`set_sync_debug_mode`).",
        "overrides": " (đặt ở đây: {pairs})",
        "steps": "{n} bước của ",
    },
}  # fmt: skip


def step_gaps_markdown(path, lang: str = "en") -> str:
    """Each loop of a `step_gaps.py` result in `lang` (en, vi): its step, the GPU's busy and idle time in it, the
    waits for the GPU, its three longest gaps and the work that ended them."""
    result = report.load(path)
    words = _GAP_WORDS[lang]
    variant = result["variant"]
    changed = {k: v for k, v in result.get("overrides", {}).items() if k == "attn" and v != "flash_attn_4"}
    overrides = words["overrides"].format(pairs=", ".join(f"{k}={v}" for k, v in changed.items())) if changed else ""
    steps = words["steps"].format(n=result["steps"]) if "steps" in result else ""  # recorded since commit 13ca9cf
    lines = [words["caption"].format(variant=variant, overrides=overrides, steps=steps, **report.stamp(result)), ""]
    lines += report.markdown_header(words["header"])
    for loop in ("lightning", "bare"):
        r = result[loop]
        gaps = r.get("longest_gaps", [])[:3]
        cells = [
            words["loops"][loop],
            ratio(r["wall_ms_per_step"], lang, 1),
            ratio(r["gpu_busy_ms_per_step"], lang, 1),
            ratio(r["gpu_idle_ms_per_step"], lang, 1),
            ratio(sum(w["per_step"] for w in r["waits_per_step"]), lang, 1),
            "; ".join(ratio(g["ms"], lang, 1) for g in gaps) or "-",
            "; ".join(sorted({g["work"] for g in gaps})) or "-",
        ]
        lines.append(report.markdown_row(cells))
    return "\n".join(lines)
