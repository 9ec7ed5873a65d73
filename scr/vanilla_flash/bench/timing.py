"""Timing and memory helpers for the benchmarks: GPU time measured properly, on any device.

`timeit` and `paired_timeit` time calls back to back in blocks (CUDA events on a GPU, the wall
clock on a CPU) after a warm-up, and report medians; `peak_mib` measures the memory one call adds
at its peak; `is_oom` tells an out-of-memory error from other failures, which the benchmarks
record as results rather than stop on.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

import torch

from vanilla_flash.attention import registry as attention

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


def paired_timeit(
    fn_a: Callable[[], object], fn_b: Callable[[], object], warmup: int = 3, repeats: int = 10
) -> tuple[float, float]:
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


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def failure_status(err: BaseException) -> str:
    """A benchmark row's status for a run that raised `err`: "OOM", or the error, shortened."""
    return "OOM" if is_oom(err) else f"error: {type(err).__name__}: {err}"[:300]


def peak_mib(fn: Callable[[], object]) -> float | None:
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


def free_memory():
    """Give back what the last measurement left: its objects caught in reference cycles (a Lightning
    trainer and its model) first, then the GPU memory cached for them, so the next measurement starts
    with the whole card and no blocks cut to another's sizes."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def alloc_retries() -> int | None:
    """How often the CUDA allocator has found no free block, given back its cache and asked again (each a
    synchronisation that stalls the GPU: a measurement during which it grows ran slowed by memory, not
    kernels). None off the GPU."""
    return torch.cuda.memory_stats().get("num_alloc_retries", 0) if torch.cuda.is_available() else None


def alloc_retries_since(before: int | None) -> int | None:
    """`alloc_retries` since it read `before` (None off the GPU)."""
    now = alloc_retries()
    return None if before is None or now is None else now - before


def matmul_tflops(n: int = 8192, dtype: torch.dtype = torch.bfloat16, repeats: int = 20) -> float | None:
    """The TFLOP/s of an n x n x n matrix multiplication on this GPU (None on a CPU): what MFU is
    measured against in the same run, so that a slowed or shared GPU shows as itself."""
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn_like(a)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return round(2 * n**3 * repeats / (time.perf_counter() - start) / 1e12, 1)


def fwd_bwd(name: str, qkv, grad, causal: bool) -> Callable[[], None]:
    """A call that runs forward and backward of backend `name` on leaf copies of `qkv`."""
    q, k, v = (t.detach().requires_grad_() for t in qkv)

    def call():
        attention.attend(name, q, k, v, causal=causal).backward(grad)
        q.grad = k.grad = v.grad = None

    return call
