"""Which attention should I use? The kernel benchmarks that settle it.

- `attention_grid()`: every backend available here over sequence length x head dim x causal x
  dtype (default: the FlashAttention-2 paper's setting, 16k tokens per batch, hidden 2048). Each
  backend is first checked against an fp32 reference on the same fresh inputs; a wrong one is
  recorded and not timed. Forward, backward and forward+backward are timed after warm-up (median
  of repeats, `vanilla_flash.bench.timing`); TFLOP/s counts a causal call as half the work
  (`flops.attention_flops`); peak memory is recorded; out-of-memory is a result ("OOM"). `auto` is
  timed too, and again alternately with the fastest backend at each point.
- `wrapper_overhead()`: the project's `attend()` against calling the kernel library directly on
  the same tensors in the same layout.
- `run()` adds the memory sweep of `vanilla_flash.bench.memory`: peak memory of forward+backward at batch 1
  as the sequence grows.
- `run()`: all of these as one result (what ``python -m vanilla_flash bench attention`` and the
  benchmark notebooks write); `summary()` the lines a person reads, `points_markdown()` the grid as small tables.

On CPU the same functions run on tiny grids (wall-clock timing), which is what the tests use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.bench import check, timing
from vanilla_flash.bench import memory as bench_memory
from vanilla_flash.errors import AttentionError
from vanilla_flash.models import flops
from vanilla_flash.results import provenance

PAPER_TOKENS = 16384
PAPER_HIDDEN = 2048


@dataclasses.dataclass
class Point:
    backend: str
    dtype: str
    seq: int
    head_dim: int
    causal: bool
    batch: int
    heads: int
    status: str  # ok | wrong | skip | OOM | error
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    fwd_bwd_ms: float | None = None
    fwd_tflops: float | None = None
    bwd_tflops: float | None = None
    fwd_bwd_tflops: float | None = None
    peak_mem_mib: float | None = None
    rel_err: float | None = None
    note: str = ""
    paired_with: str | None = None  # auto only: the fastest backend at this point, timed alternately with it
    paired_ratio: float | None = None  # that backend's fwd+bwd time over auto's, from the alternating timing


def measure_backend(name, q, k, v, grad, causal, repeats=10, warmup=3) -> dict:
    """Time forward, backward and forward+backward of one backend; peak memory of one fwd+bwd."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))

    def fwd():
        with torch.no_grad():
            return attention.attend(name, q, k, v, causal=causal)

    fwd_bwd = timing.fwd_bwd(name, (q, k, v), grad, causal)
    graph = [attention.attend(name, q, k, v, causal=causal)]  # one forward, its backward timed alone

    def bwd():
        graph[0].backward(grad, retain_graph=True)
        q.grad = k.grad = v.grad = None

    result = {"fwd_ms": timing.timeit(fwd, warmup, repeats), "bwd_ms": timing.timeit(bwd, warmup, repeats)}
    graph.clear()
    result["fwd_bwd_ms"] = timing.timeit(fwd_bwd, warmup, repeats)
    if q.is_cuda:
        result["peak_mem_mib"] = timing.peak_mib(fwd_bwd)
    return result


def attention_grid(
    backends: list[str] | None = None,
    seq_lens=(512, 1024, 2048, 4096, 8192, 16384),
    head_dims=(64, 128),
    causal_opts=(False, True),
    dtypes=("bfloat16",),
    tokens: int = PAPER_TOKENS,
    hidden: int = PAPER_HIDDEN,
    repeats: int = 10,
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> list[Point]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = env.probe()
    backends = backends or attention.names()
    points = []
    gen = torch.Generator(device=device).manual_seed(0)
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for head_dim in head_dims:
            for causal in causal_opts:
                for seq in seq_lens:
                    batch, heads = max(1, tokens // seq), hidden // head_dim
                    shape = check.Shape(batch, heads, seq, head_dim, causal)
                    try:
                        qkv, grad, _ = check.random_inputs(shape, dtype, device, gen)
                        ref_out = _reference_forward(qkv, causal)
                    except Exception as err:
                        if not timing.is_oom(err):
                            raise
                        ref_out = None
                        qkv, grad, _ = check.random_inputs(shape, dtype, device, gen)
                    here = []
                    for name in backends:
                        p = Point(name, dtype_name, seq, head_dim, causal, batch, heads, "skip")
                        points.append(p)
                        here.append(p)
                        reason = attention.why_not(name, machine, dtype=dtype, head_dim=head_dim)
                        if reason:
                            p.note = reason
                            continue
                        _run_point(p, qkv, grad, ref_out, repeats)
                        log(_point_line(p))
                    _pair_auto(here, qkv, grad, repeats)
                    del qkv, grad, ref_out
                    timing.free_memory()
    return points


def _pair_auto(here: list[Point], qkv, grad, repeats: int) -> None:
    """Time `auto` and the fastest other backend at this point again, alternately (`paired_timeit`),
    and record the ratio on auto's point: timed one after the other, the same kernel can differ by
    several percent (seen: up to 8% on an H100)."""
    ok = {p.backend: p for p in here if p.status == "ok"}
    auto, others = ok.get("auto"), [p for p in ok.values() if p.backend != "auto"]
    if auto is None or not others:
        return
    fastest = min(others, key=lambda p: p.fwd_bwd_ms)
    try:
        ms_fastest, ms_auto = timing.paired_timeit(
            timing.fwd_bwd(fastest.backend, qkv, grad, auto.causal),
            timing.fwd_bwd("auto", qkv, grad, auto.causal),
            repeats=repeats,
        )
    except Exception as err:
        timing.free_memory()
        if not timing.is_oom(err):
            raise
        return
    auto.paired_with, auto.paired_ratio = fastest.backend, round(ms_fastest / ms_auto, 3)


REFERENCE_BYTES = 2 * 2**30  # at most this much for one slice of fp32 scores in the reference


def _reference_forward(qkv, causal):
    """fp32 eager forward, for the correctness gate before timing. Computed a few (batch, head)
    slices at a time, so the N x N fp32 scores of a 16k sequence fit beside the inputs."""
    q, k, v = qkv
    batch, heads, seq = q.shape[:3]
    per_slice = seq * k.shape[2] * 4 * 2  # scores and probabilities
    step = max(1, REFERENCE_BYTES // per_slice)
    out = torch.empty(batch, seq, heads, v.shape[-1], dtype=torch.float32, device=q.device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            for b in range(batch):
                for h in range(0, heads, step):
                    sl = (slice(b, b + 1), slice(h, h + step))
                    out[b : b + 1, :, h : h + step] = attention.attend(
                        "eager", q[sl].float(), k[sl].float(), v[sl].float(), causal=causal
                    )
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return out


def _run_point(p: Point, qkv, grad, ref_out, repeats: int) -> None:
    q, k, v = qkv
    try:
        if ref_out is not None:
            with torch.no_grad():
                out = attention.attend(p.backend, q, k, v, causal=p.causal)
            p.rel_err = check.rel_err(out, ref_out)
            del out
            tol = check.TOLERANCE[q.dtype]
            if not (math.isfinite(p.rel_err) and p.rel_err < tol):
                p.status, p.note = "wrong", f"relative error {p.rel_err:.2e} >= {tol:.0e}: not timed"
                return
        measured = measure_backend(p.backend, q, k, v, grad, p.causal, repeats=repeats)
    except AttentionError as err:
        p.status, p.note = "skip", str(err)[:300]
        return
    except Exception as err:
        timing.free_memory()
        if timing.is_oom(err):
            p.status, p.note = "OOM", "out of memory"
        else:
            p.status, p.note = "error", f"{type(err).__name__}: {err}"[:300]
        return
    p.status = "ok"
    for key, value in measured.items():
        setattr(p, key, round(value, 4))
    for mode in ("fwd", "bwd", "fwd_bwd"):
        count = flops.attention_flops(p.batch, p.heads, p.seq, p.head_dim, p.causal, mode)
        setattr(p, f"{mode}_tflops", round(count / (getattr(p, f"{mode}_ms") * 1e-3) / 1e12, 2))


def _point_line(p: Point) -> str:
    where = f"{p.dtype} d{p.head_dim} {'causal' if p.causal else 'full':<6} seq {p.seq:>5}"
    if p.status != "ok":
        return f"{where}  {p.backend:<15} {p.status}  {p.note[:80]}"
    if p.peak_mem_mib is None:  # a CPU: the time and the check, not kernel speed
        return f"{where}  {p.backend:<15} fwd+bwd {p.fwd_bwd_ms:9.3f} ms  rel err {p.rel_err:.1e}"
    return (
        f"{where}  {p.backend:<15} fwd+bwd {p.fwd_bwd_tflops:7.1f} TFLOP/s  fwd {p.fwd_tflops:7.1f}  "
        f"bwd {p.bwd_tflops:7.1f}  mem {p.peak_mem_mib:8.0f} MiB"
    )


def auto_ratios(points: list[Point]) -> list[dict]:
    """At each grid point: auto's fwd+bwd speed over the fastest backend's, from the alternating
    timing of the two where there is one (`ratio_alternating`), else from the grid's own timings
    (`ratio_separate`)."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        if p.status == "ok":
            groups.setdefault((p.dtype, p.head_dim, p.causal, p.seq), []).append(p)
    rows = []
    for (dtype, head_dim, causal, seq), ps in sorted(groups.items()):
        named = {p.backend: p for p in ps}
        others = [p for p in ps if p.backend != "auto"]
        if "auto" not in named or not others:
            continue
        best = min(others, key=lambda p: p.fwd_bwd_ms)
        auto = named["auto"]
        separate = round(best.fwd_bwd_ms / auto.fwd_bwd_ms, 3)
        paired = auto.paired_ratio if auto.paired_with == best.backend else None
        rows.append(
            {
                "dtype": dtype,
                "head_dim": head_dim,
                "causal": causal,
                "seq": seq,
                "fastest": best.backend,
                "auto_picked": attention.pick(env.probe(), dtype, head_dim, seq),
                "ratio": paired if paired is not None else separate,
                "ratio_separate": separate,
                "ratio_alternating": paired,
            }
        )
    return rows


def run(
    backends: list[str] | None = None,
    seq_lens=(512, 1024, 2048, 4096, 8192, 16384),
    head_dims=(64, 128),
    dtypes=("bfloat16",),
    tokens: int = PAPER_TOKENS,
    hidden: int = PAPER_HIDDEN,
    repeats: int = 10,
    memory_seq_lens=(1024, 2048, 4096, 8192, 16384),
    log: Callable[[str], None] = print,
) -> dict:
    """The whole attention benchmark, as a JSON-ready result for `report`: the grid (each point
    checked, then timed), auto against the fastest backend, the memory sweep and its growth
    exponents, the wrapper against direct calls, and the provenance of the run."""
    grid = dict(
        seq_lens=tuple(seq_lens),
        head_dims=tuple(head_dims),
        dtypes=tuple(dtypes),
        tokens=tokens,
        hidden=hidden,
        repeats=repeats,
    )
    points = attention_grid(backends, log=log, **grid)
    # the sweep and the wrapper check in the grid's own dtype and largest head dim: a T4 has no bf16
    memory = bench_memory.memory_sweep(seq_lens=tuple(memory_seq_lens), head_dim=min(head_dims), dtype=dtypes[0])
    wrapper = wrapper_overhead(head_dim=max(head_dims), dtype=dtypes[0])
    return {
        "kind": "attention",
        **provenance.provenance(),
        "grid": grid,
        "rows": [dataclasses.asdict(p) for p in points],
        "auto": auto_ratios(points),
        "memory": memory,
        "memory_growth_exponent": bench_memory.growth_exponents(memory),
        "wrapper_vs_direct": wrapper,
    }


CPU_NOTE = (
    "On a CPU these tiny sizes time Python and PyTorch overhead, not attention kernels: what this run shows is "
    "that every backend ran and computed the same attention as the fp32 reference (the relative error), not "
    "which one is fastest. On a GPU the same cells measure speed (TFLOP/s) and memory."
)


def points_markdown(result: dict) -> str:
    """The grid as small Markdown tables, one per (dtype, head dim, mask): a row per backend that ran, a column
    per sequence length, fwd+bwd TFLOP/s on a GPU (ms on a CPU), ✗ and the error where a backend did not
    match the reference; then, once each, the backends that cannot run here and why."""
    gpu = result["environment"]["machine"]["device"] == "cuda"
    rows = result["rows"]
    ran = [b for b in dict.fromkeys(r["backend"] for r in rows) if any(r["backend"] == b and r["status"] != "skip"
           for r in rows)]  # fmt: skip
    parts = []
    for dtype, head_dim, causal in dict.fromkeys((r["dtype"], r["head_dim"], r["causal"]) for r in rows):
        sel = [r for r in rows if (r["dtype"], r["head_dim"], r["causal"]) == (dtype, head_dim, causal)]
        seqs = list(dict.fromkeys(r["seq"] for r in sel))
        unit = "fwd+bwd TFLOP/s" if gpu else "fwd+bwd ms"
        lines = [f"**{dtype}, head dim {head_dim}, {'causal' if causal else 'full'}** ({unit})", "",
                 "| backend | " + " | ".join(map(str, seqs)) + " |", "|---" * (len(seqs) + 1) + "|"]  # fmt: skip
        for backend in ran:
            cells = []
            for seq in seqs:
                r = next((r for r in sel if r["backend"] == backend and r["seq"] == seq), None)
                if r is None or r["status"] == "skip":
                    cells.append("–")
                elif r["status"] != "ok":
                    cells.append(f"✗ {r['status']}" + (f" {r['rel_err']:.1e}" if r.get("rel_err") else ""))
                else:
                    cells.append(f"{r['fwd_bwd_tflops']:.0f}" if gpu else f"{r['fwd_bwd_ms']:.3f}")
            lines.append(f"| {backend} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    reasons: dict[str, list[str]] = {}
    for backend in dict.fromkeys(r["backend"] for r in rows):
        if backend not in ran:
            note = next(r["note"] for r in rows if r["backend"] == backend)
            reasons.setdefault(note.split(";")[0].replace(backend, "it"), []).append(backend)
    if reasons:
        parts.append("Cannot run here: " + "; ".join(f"{', '.join(b)} ({why})" for why, b in reasons.items()) + ".")
    return "\n\n".join(parts)


def summary(result: dict, points: bool = True) -> str:
    """What a person reads after the run: every point's check and speed (`points_markdown`; unless `points` is
    False, where the notebook shows those tables as Markdown), then on a GPU auto against the fastest backend
    at every point, how memory grows with the sequence, and the wrapper against direct calls; on a CPU, what
    its numbers can and cannot say."""
    lines = [points_markdown(result), ""] if points else []
    if result["environment"]["machine"]["device"] != "cuda":
        return "\n".join([*lines, CPU_NOTE])
    lines.append(
        "auto / fastest backend (fwd+bwd time ratio; 1 = auto is the fastest; timed alternately with it,"
        " and in the grid's separate timings):"
    )
    for r in result["auto"]:
        lines.append(
            f"  {r['dtype']} d{r['head_dim']} {'causal' if r['causal'] else 'full  '} seq {r['seq']:>5}: "
            f"{r['ratio']:.3f}  (separate {r['ratio_separate']:.3f}; fastest {r['fastest']}, "
            f"auto -> {r['auto_picked']})"
        )
    if result["auto"]:
        lines.append(f"  worst: {min(r['ratio'] for r in result['auto']):.3f}")
    lines.append(f"memory growth exponent with seq len (1 linear, 2 quadratic): {result['memory_growth_exponent']}")
    for r in result["wrapper_vs_direct"]:
        lines.append(
            f"wrapper vs direct call, {r['backend']}: {r['ratio']:.3f} (direct {r['direct_ms']:.3f} ms, "
            f"wrapper {r['wrapper_ms']:.3f} ms)"
        )
    return "\n".join(lines)


def wrapper_overhead(
    seq: int = 4096, head_dim: int = 128, causal: bool = True, dtype: str = "bfloat16", repeats: int = 20
) -> list[dict]:
    """`attend()` (what transformers calls) against the library called directly on the same
    (batch, heads, seq, dim) tensors, forward+backward, timed in alternating blocks."""
    if not torch.cuda.is_available():
        return []
    from torch.nn.attention import SDPBackend, sdpa_kernel

    machine = env.probe()
    batch, heads = PAPER_TOKENS // seq, PAPER_HIDDEN // head_dim
    shape = check.Shape(batch, heads, seq, head_dim, causal)
    (q, k, v), grad, _ = check.random_inputs(
        shape, getattr(torch, dtype), "cuda", torch.Generator("cuda").manual_seed(1)
    )
    q, k, v = (t.requires_grad_() for t in (q, k, v))

    def sdpa_direct(kernel):
        def call():
            with sdpa_kernel(kernel):
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out.transpose(1, 2).contiguous().backward(grad)  # the (batch, seq, heads, dim) a model reads

        return call

    direct = {
        "sdpa_cudnn": sdpa_direct(SDPBackend.CUDNN_ATTENTION),
        "sdpa_flash": sdpa_direct(SDPBackend.FLASH_ATTENTION),
    }
    if attention.why_not("flash_attn_4", machine, dtype=dtype, head_dim=head_dim) is None:
        import flash_attn.cute as fa4

        def fa4_direct():
            out, _ = fa4.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal)
            out.backward(grad)

        direct["flash_attn_4"] = fa4_direct
    if attention.why_not("flash_attn_1", machine, dtype=dtype, head_dim=head_dim) is None:
        from flash_attn import flash_attn_interface as fa1

        def fa1_direct():
            qs, ks, vs = (t.transpose(1, 2).reshape(-1, heads, head_dim) for t in (q, k, v))
            cu = torch.arange(0, (batch + 1) * seq, seq, dtype=torch.int32, device="cuda")
            out = fa1.flash_attn_unpadded_func(qs, ks, vs, cu, cu, seq, seq, 0.0, causal=causal)
            out.view(batch, seq, heads, head_dim).backward(grad)

        direct["flash_attn_1"] = fa1_direct
    rows = []
    for name, call in direct.items():
        if attention.why_not(name, machine, dtype=dtype, head_dim=head_dim):
            continue

        def wrapped(name=name):
            attention.attend(name, q, k, v, causal=causal).backward(grad)

        ms_direct, ms_wrapped = timing.paired_timeit(call, wrapped, 5, repeats)
        rows.append(
            {
                "backend": name,
                "seq": seq,
                "head_dim": head_dim,
                "causal": causal,
                "direct_ms": round(ms_direct, 4),
                "wrapper_ms": round(ms_wrapped, 4),
                "ratio": round(ms_direct / ms_wrapped, 3),
            }
        )
    return rows
