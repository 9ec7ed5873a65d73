"""The Markdown tables that the README and the docs quote from results files, in English or
Vietnamese: `tools/docs_tables.py` writes each between its markers and `--check` (tests/test_docs.py)
fails when one no longer matches its file. `builds_markdown` (results/builds.json),
`speed_markdown` (results/h200/speed.json), `plain_pytorch_markdown` (the plain-PyTorch GPT-2 that the
speed goal is measured against, results/h200/speed/plain_pytorch_profile.json),
`loss_kernel_markdown` (the loss kernel's settings, results/h200/speed/loss_kernel.json),
`step_profile_markdown` (where a step's GPU time goes, and its variants, results/h200/speed/best_profile.json),
`loss_curves_markdown` (transformers' and the vanilla model's loss over seeds, results/h200/speed/loss-curves/),
`from_scratch_markdown` (results/h200/from_scratch/).
"""

from __future__ import annotations

from pathlib import Path

from vanilla_flash.results import report

_BUILD_COLUMNS = {
    "en": ("package", "architectures", "head dims", "kernel files", "cores", "MAX_JOBS", "time", "machine", "all"),
    "vi": ("gói", "kiến trúc", "head dim", "tệp kernel", "nhân CPU", "MAX_JOBS", "thời gian", "máy", "tất cả"),
}


def builds_markdown(path, lang: str = "en") -> str:
    """`results/builds.json` as a Markdown table in `lang` (en, vi), for the docs and the README:
    `tools/docs_tables.py` writes it between markers there, and a test checks that it still matches."""
    *header, every = _BUILD_COLUMNS[lang]
    lines = [*report.markdown_header(header)]
    for r in report.load(path)["builds"]:
        time_ = f"{r['seconds'] / 60:.1f} min ({r['seconds']:.0f} s)" if r["ok"] else "failed"
        archs = ", ".join(f"{a} (PTX)" if a.startswith("compute_") else f"sm_{a}" for a in r["archs"])
        dims = ", ".join(map(str, r["head_dims"])) or every
        lines.append(
            f"| {r['package']} | {archs} | {dims} | {r['cuda_files']} | {r['cores']} | {r['max_jobs']} | "
            f"{time_} | {r['machine']} |"
        )
    return "\n".join(lines)


_FROM_SCRATCH_COLUMNS = {
    "en": {
        "header": (
            "build",
            "shape",
            "own kernel (ms)",
            "naive PyTorch (ms)",
            "sdpa_flash (ms)",
            "sdpa_cudnn (ms)",
            "own kernel rel. error",
            "own kernel slower than sdpa_cudnn",
        ),
        "ptx": "compute_{} (PTX, compiled by the driver)",
        "causal": "causal",
        "caption": "Measured on {gpu}, torch {torch}, CUDA {cuda}, {date} (commit {commit}); fp16 inputs, error "
        "against an fp32 reference.",
    },
    "vi": {
        "header": (
            "bản build",
            "kích thước",
            "kernel tự viết (ms)",
            "PyTorch ngây thơ (ms)",
            "sdpa_flash (ms)",
            "sdpa_cudnn (ms)",
            "sai số tương đối của kernel",
            "kernel tự viết chậm hơn sdpa_cudnn",
        ),
        "ptx": "compute_{} (PTX, driver biên dịch)",
        "causal": "causal",
        "caption": "Đo trên {gpu}, torch {torch}, CUDA {cuda}, ngày {date} (commit {commit}); đầu vào fp16, sai số so "
        "với tham chiếu fp32.",
    },
}


def ratio(x: float, lang: str) -> str:
    """`x` to three decimals (1.014), with a decimal comma in Vietnamese."""
    text = f"{x:.3f}"
    return text.replace(".", ",") if lang == "vi" else text


def number(x: float, lang: str, digits: int = 3, scientific: bool = False) -> str:
    """`x` to `digits` significant digits, trailing zeros kept (0.170; 2.0e-04 if `scientific`), with a
    decimal comma in Vietnamese."""
    text = f"{x:.{digits - 1}e}" if scientific else f"{x:#.{digits}g}".rstrip(".")
    return text.replace(".", ",") if lang == "vi" else text


def from_scratch_markdown(result: dict | str | Path, lang: str = "en") -> str:
    """The own kernel of `vanilla_flash.teach.from_scratch` against naive PyTorch attention and the
    libraries, as measured in a `from_scratch_kernel` result (a dict, or the path of its JSON, such
    as results/h200/from_scratch/from_scratch.json): a one-line caption (GPU, torch, date), then one
    table row per build x shape, in `lang` (en, vi). `tools/docs_tables.py` writes it into the docs."""
    if not isinstance(result, dict):
        result = report.load(result)
    t = _FROM_SCRATCH_COLUMNS[lang]
    caption = t["caption"].format(**report.stamp(result))
    lines = [caption, "", *report.markdown_header(t["header"])]
    for r in result["rows"]:
        arch = r["built_for"]
        build = t["ptx"].format(arch.removeprefix("compute_")) if arch.startswith("compute_") else f"sm_{arch}"
        shape = f"{r['shape']}, {t['causal']}" if r.get("causal") else r["shape"]
        libs = r["libraries"]
        cudnn = libs.get("sdpa_cudnn", {}).get("ms")
        cells = [
            build,
            shape,
            number(r["own_kernel_ms"], lang),
            number(r["naive_ms"], lang),
            *(number(libs[name]["ms"], lang) if name in libs else "-" for name in ("sdpa_flash", "sdpa_cudnn")),
            number(r["own_kernel_rel_err"], lang, 2, scientific=True),
            f"{number(r['own_kernel_ms'] / cudnn, lang)}×" if cudnn else "-",
        ]
        lines.append(report.markdown_row(cells))
    return "\n".join(lines)
