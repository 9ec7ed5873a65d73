"""The Markdown tables that the README and the docs quote from results files, in English or
Vietnamese: `tools/docs_tables.py` writes each between its markers and `--check` (tests/test_docs.py)
fails when one no longer matches its file. `builds_markdown` (results/builds.json),
`speed_markdown` (results/h200/speed.json), `plain_pytorch_markdown` (the plain-PyTorch GPT-2 that the
speed goal is measured against, results/h200/speed/plain_pytorch_profile.json),
`loss_kernel_markdown` (the loss kernel's settings, results/h200/speed/loss_kernel.json),
`step_profile_markdown` (where a step's GPU time goes, and its variants, results/h200/speed/best_profile.json),
`loss_curves_markdown` (transformers' and the vanilla model's loss over seeds, results/h200/speed/loss-curves/),
`kernel_ladder_markdown` (notebook 05's kernel ladder, results/h100/kernel_ladder/).
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


_LADDER_WORDS = {
    "en": {
        "kernel": "kernel",
        "caption": "{what}, causal, fp16, milliseconds (lower is better), on {gpu}, torch {torch}, {date} "
        "(commit {commit}), all in one process. Every kernel but SDPA's is built as `compute_75` PTX, a T4's "
        "instructions, which the driver compiles when it loads; relative error against float32 at these shapes"
        "{of_what}: {err_low} to {err_high} for every rung, flash-attn 1.x and SDPA alike.",
        "kernel_ladder": ("Forward pass", ""),
        "kernel_ladder_backward": (
            "Forward and backward pass (the last forward rung, then each backward rung)",
            " (the largest of dQ, dK and dV)",
        ),
        "naive": "naive PyTorch attention",
        "native": "(this GPU's own build)",
        "ptx": "(compute_75 PTX)",
        "rung": "rung {index}: {name}",
        "ssiu_turing": "ssiu/flash-attention-turing",
        "verdict": (
            "The last rung ({name}, compute_75 PTX) against flash-attn {fa1} built the same way: {fa1_x} faster",
            "; against ssiu/flash-attention-turing: {ssiu_x} faster",
            "; its native build against sdpa_flash: {flash_x} of its speed",
            ".",
        ),
    },
    "vi": {
        "kernel": "kernel",
        "caption": "{what}, causal, fp16, mili giây (càng thấp càng tốt), trên {gpu}, torch {torch}, ngày {date} "
        "(commit {commit}), tất cả trong một tiến trình. Mọi kernel trừ của SDPA đều được biên dịch thành PTX "
        "`compute_75`, tập lệnh của T4, do driver biên dịch khi nạp; sai số tương đối so với float32 ở các kích "
        "thước này{of_what}: từ {err_low} đến {err_high} cho mọi bậc, như flash-attn 1.x và SDPA.",
        "kernel_ladder": ("Lượt xuôi", ""),
        "kernel_ladder_backward": (
            "Lượt xuôi và lượt ngược (bậc xuôi cuối cùng, rồi từng bậc ngược)",
            " (lớn nhất trong dQ, dK và dV)",
        ),
        "naive": "attention cài đặt trực tiếp (naive) bằng PyTorch",
        "native": "(bản build riêng cho GPU này)",
        "ptx": "(PTX compute_75)",
        "rung": "bậc {index}: {name}",
        "ssiu_turing": "ssiu/flash-attention-turing",
        "verdict": (
            "Bậc cuối ({name}, PTX compute_75) so với flash-attn {fa1} biên dịch cùng cách: nhanh hơn {fa1_x}",
            "; so với ssiu/flash-attention-turing: nhanh hơn {ssiu_x}",
            "; bản build riêng cho GPU này so với sdpa_flash: bằng {flash_x} tốc độ của nó",
            ".",
        ),
    },
}


def kernel_ladder_markdown(result: dict | str | Path, lang: str = "en") -> str:
    """The kernel ladder's times (`experiments/kernel_ladder`, e.g. results/h100/kernel_ladder/
    kernel_ladder.json) as a Markdown table in `lang` (en, vi): a caption with the machine and the
    errors, one row per kernel (naive PyTorch, the library backends, each rung as `compute_75` PTX, the
    last rung built natively), one column per shape, then the last rung against the baselines."""
    if not isinstance(result, dict):
        result = report.load(result)
    w, times = _LADDER_WORDS[lang], result["times"]
    rungs = [r["name"] for r in result["rungs"]]
    ptx, native = sorted({k.split("@")[1] for k in times[0]["ms"] if "@" in k}, key=lambda a: not a.startswith("c"))
    errors = [e for t in times for k, e in t["rel_err"].items() if isinstance(e, float) and k != "naive"]
    what, of_what = w[result.get("kind", "kernel_ladder")]
    low, high = number(min(errors), lang, 2, True), number(max(errors), lang, 2, True)
    caption = w["caption"].format(**report.stamp(result), what=what, of_what=of_what, err_low=low, err_high=high)
    rows = [("naive", w["naive"])]
    rows += [
        (k, f"{k} {w['ptx'] if k == 'flash_attn_1' else ''}".strip())
        for k in times[0]["ms"]
        if k.startswith(("sdpa_", "flash_attn"))
    ]
    rows += [("ssiu_turing", f"{w['ssiu_turing']} {w['ptx']}")] if "ssiu_turing" in times[0]["ms"] else []
    rows += [(f"{name}@{ptx}", w["rung"].format(index=i, name=name)) for i, name in enumerate(rungs)]
    rows.append((f"{rungs[-1]}@{native}", f"{w['rung'].format(index=len(rungs) - 1, name=rungs[-1])} {w['native']}"))
    lines = [caption, "", *report.markdown_header([w["kernel"], *(t["shape"] for t in times)])]
    for key, label in rows:
        cells = [number(t["ms"][key], lang) if t["ms"].get(key) else "-" for t in times]
        lines.append(report.markdown_row([label, *cells]))
    last = times[0]["ms"]

    def against(baseline: str, key: str = f"{rungs[-1]}@{ptx}") -> str:  # the baseline's time over the rung's
        return ", ".join(f"{number(t['ms'][baseline] / t['ms'][key], lang)}×" for t in times)

    if last.get("flash_attn_1"):
        fa1_part, ssiu_part, flash_part, end = w["verdict"]
        verdict = fa1_part.format(
            name=rungs[-1], fa1=(result.get("flash_attn") or "1.x").split("+")[0], fa1_x=against("flash_attn_1")
        )
        verdict += ssiu_part.format(ssiu_x=against("ssiu_turing")) if last.get("ssiu_turing") else ""
        if last.get("sdpa_flash"):
            verdict += flash_part.format(flash_x=against("sdpa_flash", f"{rungs[-1]}@{native}"))
        lines += ["", verdict + end]
    return "\n".join(lines)


def ratio(x: float, lang: str) -> str:
    """`x` to three decimals (1.014), with a decimal comma in Vietnamese."""
    text = f"{x:.3f}"
    return text.replace(".", ",") if lang == "vi" else text


def number(x: float, lang: str, digits: int = 3, scientific: bool = False) -> str:
    """`x` to `digits` significant digits, trailing zeros kept (0.170; 2.0e-04 if `scientific`), with a
    decimal comma in Vietnamese."""
    text = f"{x:.{digits - 1}e}" if scientific else f"{x:#.{digits}g}".rstrip(".")
    return text.replace(".", ",") if lang == "vi" else text
