"""The Markdown tables that the README and the docs quote from results files, in English or
Vietnamese: `tools/docs_tables.py` writes each between its markers and `--check` (tests/test_docs.py)
fails when one no longer matches its file. `builds_markdown` (results/builds.json),
`speed_markdown` (results/h200/speed.json), `plain_pytorch_markdown` (the plain-PyTorch GPT-2 that the
speed goal is measured against, results/h200/speed/plain_pytorch_profile.json),
`loss_kernel_markdown` (the loss kernel's settings, results/h200/speed/loss_kernel.json),
`step_profile_markdown` (where a step's GPU time goes, and its variants, results/h200/speed/best_profile.json),
`loss_curves_markdown` (transformers' and the vanilla model's loss over seeds, results/h200/speed/loss-curves/),
`kernel_ladder_markdown` (notebook 05's kernel ladder, results/h100/kernel_ladder/),
`notebook_times_markdown` (how long each notebook took under papermill, results/<card>/notebooks/<target>/).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vanilla_flash.results import report

_BUILD_COLUMNS = {
    "en": ("package", "architectures", "head dims", "kernel files", "cores", "MAX_JOBS", "time", "machine", "all"),
    "vi": ("gói", "kiến trúc", "head dim", "tệp kernel", "nhân CPU", "MAX_JOBS", "thời gian", "máy", "tất cả"),
}


def builds_markdown(path, lang: str = "en", package: str | None = None) -> str:
    """`results/builds.json` (the builds of `package`, e.g. "flash-attn 1.0.9", or all) as a Markdown table in
    `lang` (en, vi), for the docs, the README and notebook 2: `tools/docs_tables.py` writes it between markers
    there, and a test checks that it still matches."""
    *header, every = _BUILD_COLUMNS[lang]
    lines = [*report.markdown_header(header)]
    for r in report.load(path)["builds"]:
        if package and r["package"] != package:
            continue
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


def ratio(x: float, lang: str, decimals: int = 3) -> str:
    """`x` to `decimals` decimals (1.014), with a decimal comma in Vietnamese."""
    text = f"{x:.{decimals}f}"
    return text.replace(".", ",") if lang == "vi" else text


def number(x: float, lang: str, digits: int = 3, scientific: bool = False) -> str:
    """`x` to `digits` significant digits, trailing zeros kept (0.170; 2.0e-04 if `scientific`), with a
    decimal comma in Vietnamese."""
    text = f"{x:.{digits - 1}e}" if scientific else f"{x:#.{digits}g}".rstrip(".")
    return text.replace(".", ",") if lang == "vi" else text


_NOTEBOOK_TIMES = {
    "en": {
        "caption": "How long each notebook took, run whole by papermill with `notebooks/params/{target}.yaml` on the "
        "{card} of `{folder}` ({dates}). Not measured on a T4, a much smaller GPU.",
        "header": ("notebook", "what it ran", "time"),
        "train": "GPT-2 {model_size}, {max_steps} steps of {batch} × {seq_len} tokens, {attn}",
        "build": "flash-attn 1.0.9 from a wheel built earlier (the build itself: the builds table)",
        "compiled": "flash-attn 1.0.9 compiled from its source archive for {archs}, head dim {dims}, on {cores} "
        "cores (on Colab's 2: the builds table)",
        "min": "{minutes:.1f} min",
        "s": "{seconds:.0f} s",
    },
    "vi": {
        "caption": "Thời gian mỗi notebook chạy trọn bằng papermill với `notebooks/params/{target}.yaml` trên "
        "{card} của `{folder}` (ngày {dates}). Chưa đo trên T4, một GPU nhỏ hơn nhiều.",
        "header": ("notebook", "nội dung đã chạy", "thời gian"),
        "train": "GPT-2 {model_size}, {max_steps} bước, mỗi bước {batch} × {seq_len} token, {attn}",
        "build": "flash-attn 1.0.9 từ một wheel đã build trước đó (thời gian build: xem bảng các bản build)",
        "compiled": "flash-attn 1.0.9 biên dịch từ gói mã nguồn cho {archs}, head dim {dims}, trên {cores} nhân "
        "(với 2 nhân của Colab: xem bảng các bản build)",
        "min": "{minutes:.1f} phút",
        "s": "{seconds:.0f} giây",
    },
}


def notebook_times_markdown(path, lang: str = "en") -> str:
    """How long each executed notebook at `path` (a folder of papermill's output, or one notebook)
    took, read from papermill's metadata, as a Markdown table in `lang`: the training notebook says what it
    trained (its injected parameters). The card is the results folder's (`results/<card>/...`)."""
    w = _NOTEBOOK_TIMES[lang]
    path = Path(path)
    files = [path] if path.suffix == ".ipynb" else sorted(path.glob("*.ipynb"))
    files = [f for f in files if f.stem[:2].isdigit() and f.stem.count("_") <= 2]  # 01_install ... 05_from_scratch
    rows, dates, targets = [], set(), set()
    for path in files:
        meta = json.loads(path.read_text())["metadata"]["papermill"]
        params = meta.get("parameters", {})
        targets.add(params.get("target", "?"))
        dates.add((meta.get("start_time") or "?")[:10])
        seconds = meta["duration"]
        time = w["min"].format(minutes=seconds / 60) if seconds >= 90 else w["s"].format(seconds=seconds)
        time = time.replace(".", ",") if lang == "vi" else time
        what = ""
        text = path.read_text()
        if path.stem.startswith("02") and "nothing to build" in text:
            what = w["build"]
        elif path.stem.startswith("02") and (cores := re.search(r"MAX_JOBS=\d+ \((\d+) cores", text)):
            archs = ", ".join(params.get("fa1_archs") or ["?"])
            what = w["compiled"].format(archs=archs, dims=", ".join(map(str, params.get("fa1_head_dims") or ["?"])),
                                        cores=cores.group(1))  # fmt: skip
        if path.stem.startswith("03") and isinstance(params.get("train"), dict):
            tr = params["train"]
            batch = tr.get("batch_size", "?") * tr.get("accumulate", 1)
            what = w["train"].format(
                batch=batch, **{k: tr.get(k, "?") for k in ("model_size", "max_steps", "seq_len", "attn")}
            )
        rows.append([path.stem, what, time])
    first = Path(files[0])
    card = first.parts[first.parts.index("results") + 1].upper() if "results" in first.parts else "?"
    folder = (
        "/".join(first.parts[first.parts.index("results") :][:-1]) if "results" in first.parts else str(first.parent)
    )
    caption = w["caption"].format(
        target="/".join(sorted(targets)), card=card, folder=folder, dates=", ".join(sorted(dates))
    )
    lines = [caption, "", *report.markdown_header(w["header"])]
    lines += [report.markdown_row(r) for r in rows]
    return "\n".join(lines)


# the speed run the key results quote: the newest, against the strongest plain-PyTorch baseline
SPEED_RUN = "h100/speed.json"
SPEED_GOAL_RATIO = 1.05  # the best through Lightning against the strongest plain GPT-2 of its kind
_KEY_RESULTS = {
    "en": {
        "header": ("what", "result", "measured on", "file"),
        "forward": "Your FlashAttention, forward (notebook 5)",
        "forward_result": "the last rung, built as `compute_75` PTX (a T4's instructions), {x}× as fast as flash-attn "
        "1.0.9 built the same way at GPT-2's shape ({shape}); {y}× at {shape_last}",
        "backward": "Your FlashAttention, forward + backward",
        "backward_result": "{x}× as fast as flash-attn 1.0.9 at {shape}, {y}× at {shape_last}; ssiu's Turing kernel: "
        "{s}× and {t}×",
        "train": "GPT-2 124M trained with it, T4's terms",
        "train_result": "its loss curve as close to sdpa's as flash-attn 1.0.9's, or closer, at {fa1} of {n} seeds; "
        "{speed}× flash-attn 1.0.9's tokens/s",
        "build": "flash-attn 1.0.9 built for a T4",
        "build_result": "{minimal} for {minimal_what} on 2 cores like a Colab VM ({full} for {full_what})",
        "train_600": "The same over notebook 3's 600 steps",
        "train_600_result": "mean distance of its loss curve from sdpa's, over the seeds: {ours}, against {again} "
        "between two sdpa runs; as close as sdpa run again at {k} of {n} seeds",
        "check": "Every attention backend against float32",
        "check_result": "{passed} of {total} checks passed (kernels forward and backward, GPT-2's loss and gradients)",
        "speed": "Fastest GPT-2 124M training through Lightning",
        "speed_result": "{tokens}k tokens/s ({weights}), {ratio}× the strongest plain-PyTorch GPT-2 of the same run "
        "({plain}k tokens/s, trained the same way, clipping as it does; goal {goal}×{short})",
        "speed_nanogpt": "; {ratio}× that loop written as nanoGPT writes it (no biases, no clipping: another model, "
        "a reference)",
        "speed_other": "; with {weights} on both sides, {ratio}×",
        "weights": {"bfloat16": "pure bf16: weights in bf16", "float32": "float32 weights and mixed precision"},
        "short": ": not reached",
        "no_t4": "Nothing here ran on a real T4: a T4's instructions ran as `compute_75` PTX on an H100.",
    },
    "vi": {
        "header": ("nội dung", "kết quả", "đo trên", "tệp"),
        "forward": "FlashAttention của bạn, lượt xuôi (notebook 5)",
        "forward_result": "bậc cuối, build thành PTX `compute_75` (tập lệnh của T4), nhanh gấp {x}× flash-attn 1.0.9 "
        "build cùng cách ở kích thước của GPT-2 ({shape}); {y}× ở {shape_last}",
        "backward": "FlashAttention của bạn, lượt xuôi + lượt ngược",
        "backward_result": "nhanh gấp {x}× flash-attn 1.0.9 ở {shape}, {y}× ở {shape_last}; so với kernel Turing của "
        "ssiu: {s}× và {t}×",
        "train": "GPT-2 124M huấn luyện bằng nó, điều kiện T4",
        "train_result": "đường loss sát với sdpa bằng hoặc hơn flash-attn 1.0.9 ở {fa1}/{n} seed; số token/s bằng "
        "{speed}× của flash-attn 1.0.9",
        "build": "flash-attn 1.0.9 build cho T4",
        "build_result": "{minimal} cho {minimal_what} trên 2 nhân như VM của Colab ({full} cho {full_what})",
        "train_600": "Như trên, qua 600 bước của notebook 3",
        "train_600_result": "khoảng cách trung bình từ đường loss của nó tới của sdpa, tính chung các seed: {ours}, "
        "so với {again} giữa hai lần chạy sdpa; sát bằng sdpa chạy lại ở {k}/{n} seed",
        "check": "Mọi backend attention so với float32",
        "check_result": "đạt {passed}/{total} phép kiểm tra (kernel xuôi và ngược, loss và gradient của GPT-2)",
        "speed": "Huấn luyện GPT-2 124M nhanh nhất qua Lightning",
        "speed_result": "{tokens}k token/s ({weights}), gấp {ratio}× GPT-2 PyTorch thuần mạnh nhất trong cùng lần "
        "chạy ({plain}k token/s, huấn luyện cùng cách, cùng cắt gradient như nó; mục tiêu {goal}×{short})",
        "speed_nanogpt": "; gấp {ratio}× vòng lặp đó viết theo cách của nanoGPT (không bias, không cắt gradient: một "
        "mô hình khác, chỉ để tham chiếu)",
        "speed_other": "; khi cả hai bên dùng {weights}, gấp {ratio}×",
        "weights": {"bfloat16": "thuần bf16: trọng số bf16", "float32": "trọng số float32 và mixed precision"},
        "short": ": chưa đạt",
        "no_t4": "Không có gì ở đây chạy trên T4 thật: tập lệnh của T4 chạy dưới dạng PTX `compute_75` trên H100.",
    },
}


# a speed run's claims (`experiments.speed.run`): each the best through Lightning against the fastest plain GPT-2
# row whose weights are of the same dtype and that clips as the project's runs do
SPEED_CLAIMS = (("best_over_plain", "float32"), ("best_over_plain_bf16_weights", "bfloat16"))


def speed_claims(result: dict) -> list[dict]:
    """The claims of a speed run's `result`, each with its weights' dtype, its best row's tokens/s through
    Lightning and its plain row's: the one against the strongest plain-PyTorch GPT-2 (the fastest plain row
    a claim is measured against) first."""
    claims = []
    for key, weights in SPEED_CLAIMS:
        if not (claim := result.get(key)):
            continue
        plain = next(
            r for r in result["plain_pytorch"]
            if r["status"] == "ok" and r["style"] == "gpt2" and r["batch"] == claim["plain_batch"]
            and r["grad_clip"] == claim["grad_clip"] and r.get("weights", "float32") == weights
        )  # fmt: skip
        best = next(r for r in result["rows"] if r["name"] == claim["best"])
        claims.append({**claim, "weights": weights, "tokens_per_s": best["lightning_tokens_per_s"],
                       "plain_tokens_per_s": plain["tokens_per_s"]})  # fmt: skip
    return sorted(claims, key=lambda c: c["plain_tokens_per_s"], reverse=True)


def key_results_markdown(results, lang: str = "en") -> str:
    """The project's key results on one screen, each read from its file under `results` (the results folder):
    the kernel ladder forward and backward against flash-attn 1.0.9, GPT-2 trained through it, the T4 build's
    time, the backends' checks and the fastest training, as a Markdown table in `lang`."""
    root, w = Path(results), _KEY_RESULTS[lang]
    rows = []

    def card(result: dict) -> str:
        return report.stamp(result)["gpu"].removeprefix("NVIDIA ")

    def ladder_ratios(result: dict, baseline: str) -> list[str]:
        key = f"{result['rungs'][-1]['name']}@compute_75"
        return [number(t["ms"][baseline] / t["ms"][key], lang) for t in result["times"]]

    fwd = report.load(root / "h100/kernel_ladder/kernel_ladder.json")
    x = ladder_ratios(fwd, "flash_attn_1")
    shapes = [t["shape"] for t in fwd["times"]]
    rows.append([w["forward"], w["forward_result"].format(x=x[0], y=x[-1], shape=shapes[0], shape_last=shapes[-1]),
                 card(fwd), "h100/kernel_ladder/kernel_ladder.json"])  # fmt: skip
    bwd = report.load(root / "h100/kernel_ladder/backward.json")
    x, s = ladder_ratios(bwd, "flash_attn_1"), ladder_ratios(bwd, "ssiu_turing")
    rows.append([w["backward"], w["backward_result"].format(x=x[0], y=x[-1], s=s[0], t=s[-1], shape=shapes[0],
                 shape_last=shapes[-1]), card(bwd), "h100/kernel_ladder/backward.json"])  # fmt: skip
    train = report.load(root / "h100/kernel_ladder/train_t4.json")
    summary = train["summary"]
    ours, fa1 = summary["from_scratch"]["mean_abs_diff"], summary["flash_attn_1"]["mean_abs_diff"]
    speed = sum(summary["from_scratch"]["tokens_per_s"]) / sum(summary["flash_attn_1"]["tokens_per_s"])
    closer = sum(a <= b for a, b in zip(ours, fa1, strict=True))
    rows.append([w["train"], w["train_result"].format(fa1=closer, n=len(ours), speed=ratio(speed, lang)), card(train),
                 "h100/kernel_ladder/train_t4.json"])  # fmt: skip
    long = report.load(root / "h100/kernel_ladder/train_t4_600.json")["summary"]
    ours, again = long["from_scratch"]["mean_abs_diff"], long["sdpa"]["mean_abs_diff"]
    rows.append([w["train_600"], w["train_600_result"].format(
        ours=ratio(sum(ours) / len(ours), lang, 4), again=ratio(sum(again) / len(again), lang, 4),
        k=sum(a <= b for a, b in zip(ours, again, strict=True)), n=len(ours)),
        card(train), "h100/kernel_ladder/train_t4_600.json"])  # fmt: skip
    builds = report.load(root / "builds.json")["builds"]
    fa1_builds = [b for b in builds if b["package"] == "flash-attn 1.0.9" and b["cores"] == 2 and b["ok"]]
    minimal = min(fa1_builds, key=lambda b: b["seconds"])
    full = max(fa1_builds, key=lambda b: b["seconds"])
    unit, words = ("phút", {"all": "mọi head dim"}) if lang == "vi" else ("min", {"all": "every head dim"})
    build = {}
    for k, b in (("minimal", minimal), ("full", full)):
        build[k] = f"{b['seconds'] / 60:.1f} {unit}".replace(".", "," if lang == "vi" else ".")
        dims = ", ".join(map(str, b["head_dims"])) if b.get("head_dims") else words["all"]
        build[f"{k}_what"] = ", ".join(f"sm_{a}" for a in b["archs"]) + f", head dim {dims}".replace(
            "head dim " + words["all"], words["all"]
        )
    rows.append([w["build"], w["build_result"].format(**build), "CPU", "builds.json"])
    check = report.load(root / "h100/backends.json")
    entries = [r for part in ("kernels", "model") for r in check.get(part, []) if r.get("status") in ("pass", "fail")]
    passed = sum(r["status"] == "pass" for r in entries)
    rows.append([w["check"], w["check_result"].format(passed=passed, total=len(entries)), card(check),
                 "h100/backends.json"])  # fmt: skip
    fastest = report.load(root / SPEED_RUN)
    head, *others = speed_claims(fastest)
    weights = w["weights"][head["weights"]]
    result = w["speed_result"].format(
        tokens=number(head["tokens_per_s"] / 1e3, lang, 4), weights=weights, ratio=ratio(head["ratio"], lang),
        plain=number(head["plain_tokens_per_s"] / 1e3, lang, 4), goal=ratio(SPEED_GOAL_RATIO, lang, 2),
        short=w["short"] if head["ratio"] < SPEED_GOAL_RATIO else "",
    )  # fmt: skip
    if head.get("over_nanogpt_style"):
        result += w["speed_nanogpt"].format(ratio=ratio(head["over_nanogpt_style"], lang))
    for other in others:
        result += w["speed_other"].format(weights=w["weights"][other["weights"]], ratio=ratio(other["ratio"], lang))
    rows.append([w["speed"], result, card(fastest), SPEED_RUN])
    lines = [*report.markdown_header(w["header"])]
    lines += [report.markdown_row([a, b, c, f"`results/{d}`"]) for a, b, c, d in rows]
    return "\n".join([*lines, "", w["no_t4"]])
