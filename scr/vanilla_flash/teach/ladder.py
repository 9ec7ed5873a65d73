"""The ladder of CUDA kernels that notebook 05 climbs: FlashAttention's forward pass, from one thread per
query row to tensor cores, one idea a rung.

Each rung is a file of `vanilla_flash/kernels/` (`RUNGS`, in order); what they share (the call from
PyTorch, the tile loads, the tensor-core instructions as PTX) is `kernels/common.cuh`. The last rung is
also the `from_scratch` attention backend (`vanilla_flash.attention.from_scratch`). Every rung uses only instructions a
T4 (sm_75) has, `mma.sync.m16n8k8` and `ldmatrix` among them, so a rung built as `compute_75` PTX is the
build a T4 gets, and runs on every later GPU through the driver's compiler.

- `RUNGS`, `source(name)`, `changes(name)`: each rung, its file, and what it changed (a unified diff
  against the rung before);
- `build(names, arch)`: the rungs compiled into one module (`builds.inline`; `forward(module, name, q, k,
  v, causal)` calls one);
- `check(module, name, ...)`: a rung against float32 attention, row by row;
- `measure(module, names, ...)`: each rung's time beside naive PyTorch and the library backends, in one
  process.

Tensors are (batch, heads, seq, head_dim), float16, head dims 64 and 128.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import torch

from vanilla_flash.builds import inline

HEAD_DIMS = (64, 128)


@dataclass(frozen=True)
class Rung:
    name: str
    file: str
    idea: str  # one sentence: what this rung changes and why it helps


RUNGS = (
    Rung(
        "scalar",
        "rung0_scalar.cu",
        "one thread per query row, scalar fp32 arithmetic: the simplest kernel, exactly right and slow",
    ),
    Rung(
        "warp_tiles",
        "rung1_warp_tiles.cu",
        "a warp per 16 query rows: every value read from shared memory serves 16 rows, not one",
    ),
    Rung("mma", "rung2_mma.cu", "Q Kᵀ and P V on the tensor cores (mma.sync.m16n8k8), fragments loaded one by one"),
    Rung("ldmatrix", "rung3_ldmatrix.cu", "the fragments loaded with ldmatrix: 16 bytes a lane, four tiles at once"),
    Rung(
        "softmax_in_registers",
        "rung4_softmax_in_registers.cu",
        "the online softmax kept in registers, the scores' accumulators reused as P: no trip through shared memory",
    ),
    Rung("swizzle", "rung5_swizzle.cu", "shared memory laid out without bank conflicts (an XOR swizzle)"),
    Rung("prefetch", "rung6_prefetch.cu", "the next key tile loaded while this one is computed"),
)
NAMES = tuple(r.name for r in RUNGS)
# part 2: the backward pass, plain, then on the tensor cores (run after the last forward rung)
BACKWARD_RUNGS = (
    Rung(
        "backward_scalar", "backward_scalar.cu", "scalar fp32: one thread per key for dK and dV, one per query for dQ"
    ),
    Rung(
        "backward_mma",
        "backward_mma.cu",
        "FlashAttention-2's backward on mma.sync.m16n8k8: dV, dK in registers, dQ through shared memory and atomics",
    ),
)


def rung(name: str) -> Rung:
    for r in RUNGS + BACKWARD_RUNGS:
        if r.name == name:
            return r
    raise ValueError(
        f"no rung {name!r}; the ladder: {', '.join(NAMES)}; the backward pass: "
        f"{', '.join(r.name for r in BACKWARD_RUNGS)}"
    )


def source(name: str) -> str:
    """The CUDA source of rung `name`."""
    return (inline.KERNELS / rung(name).file).read_text()


def changes(name: str) -> str:
    """What rung `name` changed, as a unified diff against the rung before (the whole file for the first)."""
    index = NAMES.index(rung(name).name)
    if index == 0:
        return source(name)
    before = RUNGS[index - 1]
    lines = difflib.unified_diff(
        source(before.name).splitlines(keepends=True),
        source(name).splitlines(keepends=True),
        fromfile=before.file,
        tofile=rung(name).file,
    )
    return "".join(lines)


def build(names=NAMES, arch: str | None = None, build_dir=None, verbose: bool = False):
    """Rungs `names` (forward or backward) compiled for `arch` (default: this GPU's machine code;
    "compute_75": a T4's instructions as PTX) into one module (`builds.inline.compile_kernels`). Needs a CUDA
    toolkit."""
    return inline.compile_kernels({n: rung(n).file for n in names}, arch, build_dir, verbose)


def forward(module, name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False):
    """Rung `name` of a built module: (output, log-sum-exp of each row)."""
    return getattr(module, f"{rung(name).name}_forward")(q, k, v, causal)


def backward(module, name: str, q, k, v, out, lse, grad_out, causal: bool = False):
    """Backward rung `name` of a built module: (dq, dk, dv) from the forward pass's output and log-sum-exp."""
    return getattr(module, f"{rung(name).name}_backward")(q, k, v, out, lse, grad_out, causal)


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention and each row's log-sum-exp in float32, the scores written out."""
    scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v.float(), torch.logsumexp(scores, dim=-1)


def check(module, name: str, batch=2, heads=3, seq=777, head_dim=64, causal=True, seed=0) -> dict:
    """Rung `name` against float32 attention on random fp16 inputs: the relative error of the output
    and the largest error of the log-sum-exp, and the rows that differ most."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (
        torch.randn(batch, heads, seq, head_dim, device="cuda", dtype=torch.float16, generator=g) for _ in range(3)
    )
    out, lse = forward(module, name, q, k, v, causal)
    ref, ref_lse = reference(q, k, v, causal)
    row_err = (out.float() - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-6)
    worst = row_err.flatten().topk(min(3, row_err.numel()))
    return {
        "rung": name,
        "shape": f"B{batch} H{heads} S{seq} D{head_dim}",
        "causal": causal,
        "rel_err": ((out.float() - ref).norm() / ref.norm()).item(),
        "lse_max_abs_err": (lse - ref_lse).abs().max().item(),
        "worst_rows": [
            {"row": int(i) % seq, "head": int(i) // seq, "rel_err": float(e)}
            for e, i in zip(worst.values, worst.indices, strict=True)
        ],
        "finite": bool(torch.isfinite(out).all()),
    }


def reference_gradients(q, k, v, grad_out, causal: bool) -> list[torch.Tensor]:
    """dq, dk, dv of float32 attention (autograd through PyTorch's math), the reference of the backward rungs."""
    leaves = [t.float().requires_grad_(True) for t in (q, k, v)]
    torch.nn.functional.scaled_dot_product_attention(*leaves, is_causal=causal).backward(grad_out.float())
    return [t.grad for t in leaves]


def check_backward(module, name: str, batch=2, heads=3, seq=777, head_dim=64, causal=True, seed=0) -> dict:
    """Backward rung `name` (after the last forward rung, built into the same module) against autograd of
    float32 attention: the relative error of dq, dk and dv."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v, grad_out = (
        torch.randn(batch, heads, seq, head_dim, device="cuda", dtype=torch.float16, generator=g) for _ in range(4)
    )
    out, lse = forward(module, NAMES[-1], q, k, v, causal)
    grads = backward(module, name, q, k, v, out, lse, grad_out, causal)
    errors = {
        n: ((mine.float() - ref).norm() / ref.norm()).item()
        for n, mine, ref in zip(("dq", "dk", "dv"), grads, reference_gradients(q, k, v, grad_out, causal), strict=True)
    }
    finite = all(bool(torch.isfinite(t).all()) for t in grads)
    return {
        "rung": name,
        "shape": f"B{batch} H{heads} S{seq} D{head_dim}",
        "causal": causal,
        **errors,
        "finite": finite,
    }


def time_kernels(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernels: dict, causal: bool = True) -> dict:
    """Each of `kernels` ({name: a call returning the output as (batch, heads, seq, head_dim)}) on these
    inputs: its forward time in ms (`bench.timing.timeit`) and its relative error against float32; a
    kernel that fails is recorded with its error (time None) and the others run."""
    from vanilla_flash.bench import timing

    ref, _ = reference(q, k, v, causal)
    row = {"shape": "B{} H{} S{} D{}".format(*q.shape), "causal": causal, "ms": {}, "rel_err": {}}
    for name, call in kernels.items():
        try:
            row["rel_err"][name] = ((call().float() - ref).norm() / ref.norm()).item()
            row["ms"][name] = timing.timeit(call)
        except Exception as err:
            row["ms"][name], row["rel_err"][name] = None, timing.failure_status(err)
        timing.free_memory()
    return row


_PLOT_WORDS = {
    "en": {
        "title": "Forward pass, causal fp16, {gpu}: milliseconds, lower is better (log scale)",
        "title_backward": "Forward + backward pass, causal fp16, {gpu}: milliseconds, lower is better (log scale)",
        "naive": "naive PyTorch",
        "rung": "rung {index}: {name}",
        "native": "rung {index}: {name}, this GPU's build",
        "ptx": "{name} (compute_75 PTX)",
    },
    "vi": {
        "title": "Lượt xuôi, causal fp16, {gpu}: mili giây, càng thấp càng tốt (thang log)",
        "title_backward": "Lượt xuôi + lượt ngược, causal fp16, {gpu}: mili giây, càng thấp càng tốt (thang log)",
        "naive": "PyTorch cài đặt trực tiếp",
        "rung": "bậc {index}: {name}",
        "native": "bậc {index}: {name}, bản build riêng cho GPU",
        "ptx": "{name} (PTX compute_75)",
    },
}


def plot(result: dict, path, lang: str = "en"):
    """The ladder's times (a `kernel_ladder` result, or its backward pass's): one panel per shape, a bar per
    kernel, the rungs as `compute_75` PTX in green beside naive PyTorch, SDPA's kernels, flash-attn 1.x and ssiu's
    Turing kernel."""
    from matplotlib import ticker

    from vanilla_flash.results import plots

    plt, w = plots.pyplot(), _PLOT_WORDS[lang]
    times, names = result["times"], [r["name"] for r in result["rungs"]]
    archs = sorted({k.split("@")[1] for k in times[0]["ms"] if "@" in k}, key=lambda a: not a.startswith("compute_"))
    bars = [("naive", w["naive"], "#9e9e9e")]
    for key, color in (("sdpa_efficient", "#8ecae6"), ("sdpa_flash", "#219ebc"), ("sdpa_cudnn", "#023047")):
        bars += [(key, key, color)] if key in times[0]["ms"] else []
    for key, color in (("flash_attn_1", "#d62828"), ("ssiu_turing", "#f77f00")):
        bars += [(key, w["ptx"].format(name=key), color)] if key in times[0]["ms"] else []
    greens = plt.get_cmap("Greens")
    for i, name in enumerate(names):
        bars.append((f"{name}@{archs[0]}", w["rung"].format(index=i, name=name), greens(0.35 + 0.6 * i / len(names))))
    if len(archs) > 1:
        bars.append((f"{names[-1]}@{archs[1]}", w["native"].format(index=len(names) - 1, name=names[-1]), "#1b4332"))
    fig, axes = plt.subplots(len(times), 1, figsize=(8.5, 1.2 + 3.4 * len(times)), squeeze=False)
    for ax, t in zip(axes[:, 0], times, strict=True):
        shown = [(label, t["ms"][key], color) for key, label, color in bars if t["ms"].get(key)]
        ax.barh(range(len(shown)), [ms for _, ms, _ in shown], color=[c for _, _, c in shown])
        for y, (_, ms, _) in enumerate(shown):
            ax.text(ms * 1.04, y, f"{ms:.3g}", va="center", fontsize=8)
        ax.set_yticks(range(len(shown)), [label for label, _, _ in shown], fontsize=8.5)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(min(ms for _, ms, _ in shown) / 2, max(ms for _, ms, _ in shown) * 2.2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(t["shape"], fontsize=10, loc="left")
        if t["ms"].get("flash_attn_1"):
            ax.axvline(t["ms"]["flash_attn_1"], color="#d62828", linestyle="--", linewidth=0.8)
    gpu = result.get("environment", {}).get("machine", {}).get("gpu_name") or "GPU"
    title = w["title_backward" if result.get("kind") == "kernel_ladder_backward" else "title"]
    fig.suptitle(title.format(gpu=gpu), fontsize=10.5)
    return plots.save(fig, path)
