"""`experiments/speed/plain_probe.py`'s result as a Markdown table (`plain_probe_markdown`): the plain-PyTorch
GPT-2 of the speed run written otherwise one thing at a time, each row's tokens/s against the first row's and
where its step's GPU time goes (kernels grouped, from the profiler)."""

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
