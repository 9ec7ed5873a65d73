"""The checks of notebook 05's exercises: the reader writes a step's function, and its check says
precisely what is wrong (which rows, tiles or gradients differ, and by how much), or "correct".

Each check runs the reader's function on a few inputs (causal and not, lengths that no block size
divides) against the library's own implementation of the step (`vanilla_flash.teach.from_scratch`),
catches what a first attempt does (not written yet, an exception, a wrong shape or type) and returns
one sentence. `check(step, fn)` picks the check by the step's name (`STEPS`).
"""

from __future__ import annotations

import traceback

import torch
import torch.nn.functional as F

from vanilla_flash.teach import from_scratch as fs

CORRECT = "✓ correct"
NOT_WRITTEN = "✗ not written yet: replace `raise NotImplementedError` with your code, then run this cell again"


def _inputs(seq: int, head_dim: int = 16, batch: int = 2, heads: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, seq, head_dim, generator=g, dtype=torch.float64) for _ in range(3))


def _call(fn, *args, **kwargs):
    """(result, None), or (None, what went wrong) in one sentence."""
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, NOT_WRITTEN
    except Exception as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if "vanilla_flash" not in f.filename]
        line = (frames[-1].line or "").strip() if frames else ""
        where = f" (line {frames[-1].lineno}{f': `{line}`' if line else ''})" if frames else ""
        return None, f"✗ raised {type(err).__name__}: {err}{where}"


def _differs(got, want, what: str, unit: str = "row", unit_size: int = 1, atol: float = 1e-6) -> str | None:
    """None if `got` matches `want`; else which rows (or tiles of `unit_size` rows: the second-to-last
    dimension) differ, and the largest difference, where, with both values."""
    if not isinstance(got, torch.Tensor):
        return f"✗ {what} is a {type(got).__name__}, expected a tensor of shape {tuple(want.shape)}"
    if got.shape != want.shape:
        return f"✗ {what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    got, want = got.detach().double(), want.double()
    diff = (got - want).abs().nan_to_num(nan=float("inf"), posinf=float("inf"))
    bad = diff > atol + 1e-5 * want.abs()
    if not bool(bad.any()):
        return None
    rows = bad.reshape(-1, *bad.shape[-2:]).any(dim=2).any(dim=0)
    units = sorted({int(r) // unit_size for r in torch.nonzero(rows).flatten()})
    total = -(-want.shape[-2] // unit_size)
    listed = ", ".join(map(str, units[:8])) + (", ..." if len(units) > 8 else "")
    worst = int(diff.argmax())
    at = ", ".join(str(int(i)) for i in torch.unravel_index(torch.tensor(worst), diff.shape))
    return (
        f"✗ {what}: {len(units)} of {total} {unit}s differ ({unit} {listed}); the largest difference is "
        f"{float(diff.flatten()[worst]):.3g}, at [{at}]: got {float(got.flatten()[worst]):.6g}, expected "
        f"{float(want.flatten()[worst]):.6g}"
    )


def naive_attention(fn) -> str:
    """softmax(Q Kᵀ / √d) V, with and without the causal mask."""
    q, k, v = _inputs(37)
    for causal in (False, True):
        got, error = _call(fn, q, k, v, causal=causal)
        if error:
            return error
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        if wrong := _differs(got, want, f"the output (causal={causal})"):
            return wrong
    return CORRECT


def online_softmax(fn) -> str:
    """softmax over the last dimension, seen `block` columns at a time."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 50, generator=g, dtype=torch.float64) * 8
    for block in (1, 7, 50, 64):
        got, error = _call(fn, x, block)
        if error:
            return error
        if wrong := _differs(got, torch.softmax(x, dim=-1), f"softmax with block={block}"):
            return wrong
    return CORRECT


def tiled_forward(fn) -> str:
    """The tiled forward pass: its output and each row's log-sum-exp, for several tile sizes."""
    q, k, v = _inputs(45)
    for causal in (False, True):
        for block_q, block_k in ((16, 16), (8, 32), (10, 7)):
            got, error = _call(fn, q, k, v, block_q, block_k, causal=causal)
            if error:
                return error
            if not isinstance(got, tuple | list) or len(got) < 2:
                return f"✗ returned a {type(got).__name__}; expected (output, log-sum-exp)"
            want_o, want_lse, _ = fs.tiled_forward(q, k, v, block_q, block_k, causal=causal)
            setting = f"tiles {block_q} x {block_k}, causal={causal}"
            if wrong := _differs(got[0], want_o, f"the output ({setting})", "query tile", block_q):
                return wrong
            if wrong := _differs(
                got[1][..., None], want_lse[..., None], f"the log-sum-exp ({setting})", "query tile", block_q
            ):
                return wrong
    return CORRECT


def tiled_backward(fn) -> str:
    """dQ, dK and dV by recomputation from the log-sum-exp, against autograd through naive attention."""
    q, k, v = _inputs(45)
    grad_out = _inputs(45, seed=1)[0]
    for causal in (False, True):
        o, lse, _ = fs.tiled_forward(q, k, v, 16, 16, causal=causal)
        got, error = _call(fn, q, k, v, o, lse, grad_out, 16, 16, causal=causal)
        if error:
            return error
        if not isinstance(got, tuple | list) or len(got) != 3:
            return f"✗ returned a {type(got).__name__}; expected (dq, dk, dv)"
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        F.scaled_dot_product_attention(*leaves, is_causal=causal).backward(grad_out)
        for name, mine, leaf in zip(("dq", "dk", "dv"), got, leaves, strict=True):
            if wrong := _differs(mine, leaf.grad, f"{name} (causal={causal})", "tile", 16):
                return wrong
    return CORRECT


STEPS = {
    "naive_attention": naive_attention,
    "online_softmax": online_softmax,
    "tiled_forward": tiled_forward,
    "tiled_backward": tiled_backward,
}


def check(step: str, fn) -> str:
    """Step `step`'s check of the reader's `fn`: "✓ correct", or what is wrong."""
    return STEPS[step](fn)
