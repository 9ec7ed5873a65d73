"""Benchmarks that settle "which attention should I use", and what training costs.

- `attention_grid()`: every backend available here over sequence length x head dim x causal x
  dtype (default: the FlashAttention-2 paper's setting, 16k tokens per batch, hidden 2048). Each
  backend is first checked against an fp32 reference on the same fresh inputs; a wrong one is
  recorded and not timed. Forward, backward and forward+backward are timed with CUDA events after
  warm-up (median of repeats); TFLOP/s counts a causal call as half the work; peak memory is
  recorded; out-of-memory is a result ("OOM"). `auto` is timed too.
- `wrapper_overhead()`: the project's `attend()` against calling the kernel library directly on
  the same tensors in the same layout.
- `memory_sweep()`: peak memory of forward+backward at batch 1 as the sequence grows.
- `train_grid()`: GPT-2 training steps per backend and sequence length (bare PyTorch loop):
  tokens/s, step time, MFU, peak memory.
- `lightning_overhead()`: the Lightning trainer against a bare PyTorch loop on the same model,
  data, backend and precision.

On CPU the same functions run on tiny grids (wall-clock timing), which is what the tests use.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics
import time
from collections.abc import Callable

import lightning as L
import torch

from vanilla_flash import attention, check, env, precision
from vanilla_flash.attention import AttentionError

PAPER_TOKENS = 16384
PAPER_HIDDEN = 2048


def environment() -> dict:
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": check._git_commit(),
        **env.describe().to_dict(),
    }


SLOW_CALL_S = 0.1  # a call slower than this is timed fewer times: its median is stable, and time is short
BLOCK_S = 0.01  # faster calls are timed in blocks of about this long, back to back


def _warm(fn: Callable[[], object], warmup: int) -> tuple[int, bool]:
    """Run `fn` `warmup` times (at least 2; the first may compile); return the calls per timed
    block and whether a call is slow (longer than `SLOW_CALL_S`, then timed alone)."""
    cuda = torch.cuda.is_available()
    fn()  # the first call may compile (flash-attn 4 JIT-compiles each new shape): not a sample
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    one = time.perf_counter() - t0
    slow = one > SLOW_CALL_S
    for _ in range(0 if slow else warmup - 2):
        fn()
    return (1 if slow else max(1, min(100, int(BLOCK_S / max(one, 1e-6))))), slow


def _block_ms(fn: Callable[[], object], calls: int) -> float:
    """Milliseconds per call over `calls` back-to-back calls."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) * 1e3 / calls


def timeit(fn: Callable[[], object], warmup: int = 3, repeats: int = 10) -> float:
    """Median milliseconds per call of `fn()` after `warmup` calls (at least 2).

    Calls run back to back in blocks of about `BLOCK_S` (CUDA events around each block on a GPU,
    perf_counter on CPU), as they run in a training loop: the GPU is not left idle between calls
    while Python prepares the next one, so a wrapper's few microseconds of Python do not count as
    kernel time, while anything it adds on the GPU does. A call slower than `SLOW_CALL_S` once warm
    (eager attention at 16k tokens: about a second) is timed alone, 3 times."""
    calls, slow = _warm(fn, warmup)
    return statistics.median(_block_ms(fn, calls) for _ in range(3 if slow else repeats))


def paired_timeit(fn_a: Callable[[], object], fn_b: Callable[[], object], warmup: int = 3,
                  repeats: int = 10) -> tuple[float, float]:  # fmt: skip
    """Median milliseconds per call of `fn_a` and `fn_b`, timed in alternating blocks (a, b, a, b,
    ...): a drift of the GPU's clock during the measurement reaches both alike, so their ratio is
    steadier than that of two measurements taken one after the other."""
    calls_a, slow_a = _warm(fn_a, warmup)
    calls_b, slow_b = _warm(fn_b, warmup)
    times_a, times_b = [], []
    for _ in range(3 if slow_a or slow_b else repeats):
        times_a.append(_block_ms(fn_a, calls_a))
        times_b.append(_block_ms(fn_b, calls_b))
    return statistics.median(times_a), statistics.median(times_b)


def attention_flops(batch: int, heads: int, seq: int, head_dim: int, causal: bool, mode: str) -> float:
    """FLOPs of attention: forward 4·B·H·S²·D (two matmuls), backward 2.5x forward; causal half."""
    fwd = 4 * batch * heads * seq * seq * head_dim / (2 if causal else 1)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd_bwd": 3.5 * fwd}[mode]


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _peak_mib(fn: Callable[[], object]) -> float | None:
    """MiB allocated at the peak of `fn()` above what was allocated before it (None off the GPU)."""
    if not torch.cuda.is_available():
        fn()
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _free():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def _fwd_bwd(name: str, qkv, grad, causal: bool) -> Callable[[], None]:
    """A call that runs forward and backward of backend `name` on leaf copies of `qkv`."""
    q, k, v = (t.detach().requires_grad_() for t in qkv)

    def call():
        attention.attend(name, q, k, v, causal=causal).backward(grad)
        q.grad = k.grad = v.grad = None

    return call


def measure_backend(name, q, k, v, grad, causal, repeats=10, warmup=3) -> dict:
    """Time forward, backward and forward+backward of one backend; peak memory of one fwd+bwd."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))

    def fwd():
        with torch.no_grad():
            return attention.attend(name, q, k, v, causal=causal)

    fwd_bwd = _fwd_bwd(name, (q, k, v), grad, causal)
    graph = [attention.attend(name, q, k, v, causal=causal)]  # one forward, its backward timed alone

    def bwd():
        graph[0].backward(grad, retain_graph=True)
        q.grad = k.grad = v.grad = None

    result = {"fwd_ms": timeit(fwd, warmup, repeats), "bwd_ms": timeit(bwd, warmup, repeats)}
    graph.clear()
    result["fwd_bwd_ms"] = timeit(fwd_bwd, warmup, repeats)
    if q.is_cuda:
        result["peak_mem_mib"] = _peak_mib(fwd_bwd)
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
                        qkv, grad, _ = check._inputs(shape, dtype, device, gen)
                        ref_out = _reference_forward(qkv, causal)
                    except Exception as err:
                        if not _is_oom(err):
                            raise
                        ref_out = None
                        qkv, grad, _ = check._inputs(shape, dtype, device, gen)
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
                    _free()
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
        ms_fastest, ms_auto = paired_timeit(_fwd_bwd(fastest.backend, qkv, grad, auto.causal),
                                            _fwd_bwd("auto", qkv, grad, auto.causal), repeats=repeats)  # fmt: skip
    except Exception as err:
        _free()
        if not _is_oom(err):
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
        timing = measure_backend(p.backend, q, k, v, grad, p.causal, repeats=repeats)
    except AttentionError as err:
        p.status, p.note = "skip", str(err)[:300]
        return
    except Exception as err:
        _free()
        if _is_oom(err):
            p.status, p.note = "OOM", "out of memory"
        else:
            p.status, p.note = "error", f"{type(err).__name__}: {err}"[:300]
        return
    p.status = "ok"
    for key, value in timing.items():
        setattr(p, key, round(value, 4))
    for mode in ("fwd", "bwd", "fwd_bwd"):
        flops = attention_flops(p.batch, p.heads, p.seq, p.head_dim, p.causal, mode)
        setattr(p, f"{mode}_tflops", round(flops / (getattr(p, f"{mode}_ms") * 1e-3) / 1e12, 2))


def _point_line(p: Point) -> str:
    where = f"{p.dtype} d{p.head_dim} {'causal' if p.causal else 'full':<6} seq {p.seq:>5}"
    if p.status != "ok":
        return f"{where}  {p.backend:<15} {p.status}  {p.note[:80]}"
    return (f"{where}  {p.backend:<15} fwd+bwd {p.fwd_bwd_tflops:7.1f} TFLOP/s  fwd {p.fwd_tflops:7.1f}  "
            f"bwd {p.bwd_tflops:7.1f}  mem {p.peak_mem_mib or 0:8.0f} MiB")  # fmt: skip


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
        rows.append({"dtype": dtype, "head_dim": head_dim, "causal": causal, "seq": seq,
                     "fastest": best.backend, "auto_picked": attention.pick(env.probe(), dtype, head_dim, seq),
                     "ratio": paired if paired is not None else separate, "ratio_separate": separate,
                     "ratio_alternating": paired})  # fmt: skip
    return rows


def attention_result(points: list[Point]) -> dict:
    """A JSON-ready result for `report`: the points, auto's ratios and the environment."""
    return {"kind": "attention", "environment": environment(), "rows": [dataclasses.asdict(p) for p in points],
            "auto": auto_ratios(points)}  # fmt: skip


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
    (q, k, v), grad, _ = check._inputs(shape, getattr(torch, dtype), "cuda", torch.Generator("cuda").manual_seed(1))
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

        ms_direct, ms_wrapped = paired_timeit(call, wrapped, 5, repeats)
        rows.append({"backend": name, "seq": seq, "head_dim": head_dim, "causal": causal,
                     "direct_ms": round(ms_direct, 4), "wrapper_ms": round(ms_wrapped, 4),
                     "ratio": round(ms_direct / ms_wrapped, 3)})  # fmt: skip
    return rows


def memory_sweep(
    backends: list[str] | None = None, seq_lens=(1024, 2048, 4096, 8192, 16384), heads=16, head_dim=64,
    dtype="bfloat16",
) -> list[dict]:  # fmt: skip
    """Peak memory of one forward+backward at batch 1 (MiB above the inputs) as seq grows."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = env.probe()
    backends = backends or ["eager", "sdpa_math", "sdpa_efficient", "sdpa_flash", "sdpa_cudnn", "flash_attn_1",
                            "flash_attn_4"]  # fmt: skip
    rows = []
    for seq in seq_lens:
        shape = check.Shape(1, heads, seq, head_dim, True)
        qkv, grad, _ = check._inputs(shape, getattr(torch, dtype), device, torch.Generator(device).manual_seed(2))
        for name in backends:
            if attention.why_not(name, machine, dtype=dtype, head_dim=head_dim):
                continue
            row = {"backend": name, "seq": seq, "peak_mem_mib": None, "status": "ok"}
            rows.append(row)
            try:
                peak = _peak_mib(_fwd_bwd(name, qkv, grad, causal=True))
                if peak is not None:
                    row["peak_mem_mib"] = round(peak, 1)
            except AttentionError as err:
                row["status"] = f"skip: {err}"[:200]
            except Exception as err:
                if not _is_oom(err):
                    raise
                row["status"] = "OOM"
            _free()
    return rows


def growth_exponents(rows: list[dict]) -> dict[str, float]:
    """Per backend, the log-log slope of peak memory against seq len (1: linear, 2: quadratic)."""
    out = {}
    for name in sorted({r["backend"] for r in rows}):
        pts = [(r["seq"], r["peak_mem_mib"]) for r in rows if r["backend"] == name and r.get("peak_mem_mib")]
        if len(pts) >= 2:
            (s0, m0), (s1, m1) = pts[0], pts[-1]
            out[name] = round(math.log(m1 / m0) / math.log(s1 / s0), 2)
    return out


# ---------------------------------------------------------------------------------------------
# Training


def _batches(cfg, steps: int, device: str):
    """Random token blocks for `steps` steps (kernel speed does not depend on the text)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        yield torch.randint(0, 50257, (cfg.batch_size, cfg.seq_len), generator=gen).to(device, non_blocking=True)


def bare_loop(cfg, steps: int = 30, warmup: int = 10, data_loader=None) -> dict:
    """A plain PyTorch training loop on the same model, optimizer, schedule and precision as
    `train.GPT2Module`: what Lightning is compared against."""
    from vanilla_flash.train import GPT2Module, peak_flops, resolve_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = env.probe()
    prec = resolve_precision(cfg, machine)
    torch.manual_seed(cfg.seed)
    module = GPT2Module(dataclasses.asdict(cfg), vocab_size=50257).to(device)
    module.loop_precision = prec
    module.configure_model()
    opt_cfg = module.configure_optimizers()
    optimizer, schedule = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    scaler = torch.amp.GradScaler(device, enabled=prec == "16-mixed")
    batches = iter(data_loader) if data_loader is not None else _batches(cfg, steps + warmup, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + warmup):
        if i == warmup:  # the clock runs over the timed steps as a whole, as a real loop runs them
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        for _ in range(cfg.accumulate):
            ids = next(batches).to(device, non_blocking=True)
            with precision.autocast(prec, device):
                loss = module(ids) / cfg.accumulate
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        if (i + 1) % cfg.log_every == 0:
            loss.item()  # a loop that watches its loss reads it every few steps, as the Lightning run logs it
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    tokens_s = cfg.batch_size * cfg.seq_len * cfg.accumulate / step_s
    peak = peak_flops(machine.gpu_name)
    return {
        "tokens_per_s": round(tokens_s, 1),
        "step_ms": round(step_s * 1e3, 2),
        "mfu": round(tokens_s * module.flops_per_token / peak, 4) if peak else None,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "loss": float(loss.detach()) * cfg.accumulate,
    }


def train_grid(
    size: str = "124M",
    backends=("eager", "sdpa_efficient", "sdpa_flash", "sdpa_cudnn", "flash_attn_1", "flash_attn_4"),
    seq_lens=(1024, 2048, 4096, 8192),
    tokens_per_step: int = 16384,
    steps: int = 15,
    compile: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """GPT-2 `size` training steps per backend and sequence length, same tokens per step."""
    from vanilla_flash.train import TrainConfig

    machine = env.probe()
    prec = precision.policy(machine)
    dtype = precision.autocast_dtype(prec) or torch.float32
    rows = []
    for seq in seq_lens:
        for name in backends:
            row = {"backend": name, "size": size, "seq": seq, "batch": max(1, tokens_per_step // seq),
                   "precision": prec, "compile": compile, "status": "ok"}  # fmt: skip
            rows.append(row)
            head_dim = 64
            reason = attention.why_not(name, machine, dtype=dtype, head_dim=head_dim)
            if reason:
                row["status"] = f"skip: {reason}"
                continue
            cfg = TrainConfig(model_size=size, seq_len=seq, batch_size=row["batch"], attn=name, compile=compile,
                              warmup_steps=2, max_steps=1000)  # fmt: skip
            try:
                row.update(bare_loop(cfg, steps=steps, warmup=5 if not compile else 8))
            except Exception as err:
                _free()
                row["status"] = "OOM" if _is_oom(err) else f"error: {type(err).__name__}: {err}"[:300]
            _free()
            log(_train_line(row))
    return rows


def impl_grid(
    size: str = "124M",
    variants: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("hf", "flash_attn_1", ()),
        ("hf", "sdpa_cudnn", ()),
        ("flash_attn", "-", ()),
        ("flash_attn", "-", ("fused_bias_fc", "fused_mlp", "fused_xentropy")),
        ("flash_attn", "-", ("fused_bias_fc", "fused_mlp", "fused_dropout_add_ln", "fused_xentropy")),
    ),
    seq_len: int = 1024,
    batch: int = 16,
    steps: int = 20,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Hugging Face GPT-2 against flash-attn's own GPT (fused parts off and on), same size, data
    shape and precision: tokens/s and peak memory. A variant that cannot run here is recorded."""
    from vanilla_flash.train import TrainConfig

    rows = []
    for impl, attn, fused in variants:
        row = {"model_impl": impl, "attn": attn, "fused": list(fused), "size": size, "seq": seq_len, "batch": batch,
               "status": "ok"}  # fmt: skip
        rows.append(row)
        cfg = TrainConfig(model_size=size, seq_len=seq_len, batch_size=batch, model_impl=impl, fused=list(fused),
                          attn=attn if impl == "hf" else "auto", warmup_steps=2, max_steps=1000)  # fmt: skip
        try:
            row.update(bare_loop(cfg, steps=steps, warmup=5))
        except Exception as err:
            _free()
            row["status"] = "OOM" if _is_oom(err) else f"error: {type(err).__name__}: {err}"[:300]
        _free()
        log(f"{impl:<10} {attn:<13} fused {','.join(fused) or '-':<60} "
            + (f"{row['tokens_per_s'] / 1e3:7.1f}k tok/s  peak {row['peak_mem_gib']} GiB" if row["status"] == "ok"
               else row["status"][:100]))  # fmt: skip
    return rows


def _train_line(r: dict) -> str:
    if r["status"] != "ok":
        return f"seq {r['seq']:>5} {r['backend']:<15} {r['status'][:90]}"
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
    return (f"seq {r['seq']:>5} {r['backend']:<15} {r['tokens_per_s'] / 1e3:8.1f}k tok/s  step {r['step_ms']:8.1f} ms"
            f"  MFU {mfu:>6}  peak {r.get('peak_mem_gib') or 0:6.1f} GiB")  # fmt: skip


class StepTimer(L.Callback):
    """Wall-clock time of a Lightning run's optimizer steps after the first `warmup`, measured over
    all of them at once: everything the trainer does per step (data, logging, progress bar) is in."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.seconds, self.steps = warmup, None, None, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        starting = self.start is None and trainer.global_step >= self.warmup
        ending = self.start is not None and trainer.global_step >= trainer.max_steps
        if not (starting or ending):
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if starting:
            self.start, self.first = time.perf_counter(), trainer.global_step
        else:  # the last step: stop before the end-of-training work (sample text, plots)
            self.seconds, self.steps = time.perf_counter() - self.start, trainer.global_step - self.first

    @property
    def step_seconds(self) -> float:
        return self.seconds / self.steps


def lightning_overhead(cfg, steps: int = 40, warmup: int = 10) -> dict:
    """tokens/s of `train.train(cfg)` (the Lightning trainer, with logging and the progress bar)
    and of `bare_loop` on the same model, data, backend and precision; and their ratio."""
    from vanilla_flash import train as training

    run_cfg = dataclasses.replace(cfg, max_steps=steps + warmup, val_every=10**6, ckpt_every=10**6,
                                  sample_every=0, sample_tokens=1)  # fmt: skip
    timer = StepTimer(warmup)
    summary = training.train(run_cfg, callbacks=[timer])
    lightning_step = timer.step_seconds
    tokens = cfg.batch_size * cfg.seq_len * cfg.accumulate
    dm = training.WikisourceData(run_cfg)
    dm.setup("fit")
    bare = bare_loop(run_cfg, steps=steps, warmup=warmup, data_loader=_cycle(dm.train_dataloader()))
    lightning_tps = tokens / lightning_step
    return {
        "attention": summary.get("attention"),
        "precision": summary.get("precision"),
        "compile": cfg.compile,
        "compile_mode": cfg.compile_mode if cfg.compile else None,
        "batch": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "lightning_tokens_per_s": round(lightning_tps, 1),
        "bare_tokens_per_s": bare["tokens_per_s"],
        "lightning_over_bare": round(lightning_tps / bare["tokens_per_s"], 4),
        "bare_mfu": bare["mfu"],
        "peak_mem_gib": bare["peak_mem_gib"],
    }


def _cycle(loader):
    while True:
        yield from loader
