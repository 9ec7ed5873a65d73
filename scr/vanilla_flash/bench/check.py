"""Does every attention backend that runs here compute attention correctly?

`check_kernels()` runs each backend forward and backward on fresh random inputs and compares the
output and the input gradients with an fp32 reference (eager attention, matmuls in full fp32). A
backend passes when the relative error ``||x - ref|| / ||ref||`` of the output and of every gradient
stays under the tolerance of its dtype (bf16 1e-2, fp16 3e-3, fp32 1e-4) and nothing is NaN.

`check_model()` runs a GPT-2 forward and backward with each backend, through transformers' GPT-2 and the
project's compact one (`models.vanilla`, which calls the backends itself), and compares the loss and the
gradient norm with the eager backend on the same batch.

`check_padded_model()` runs transformers' GPT-2 on batches padded on the left and on the right,
eagerly and under torch.compile, and compares each backend's logits on the real tokens with eager
attention in float32 (the check that would have caught `auto` dropping the padding mask).

`run()` does all three and returns a JSON-ready dict with the environment; ``python -m vanilla_flash
check`` prints the table and writes the file (on the H100: ``results/h100/backends.json``).
`random_inputs()` makes the q, k, v (and output gradient) that the benchmarks use too.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.errors import AttentionError
from vanilla_flash.results import provenance

_PRECISION = {torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed", torch.float32: "32-true"}
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 3e-3, torch.float32: 1e-4}


@dataclass(frozen=True)
class Shape:
    batch: int
    heads: int
    seq: int
    head_dim: int
    causal: bool = True
    padded: bool = False  # some sequences in the batch are shorter (a padding mask)

    def __str__(self) -> str:
        text = f"B{self.batch} H{self.heads} S{self.seq} D{self.head_dim} {'causal' if self.causal else 'full'}"
        return text + (" padded" if self.padded else "")


# GPT-2 124M's attention (16 x 1024 tokens, 12 heads of 64) causal and not, a head dim of 128, a
# ragged batch, and one decoding step against a cache (1 query, 1024 keys).
GPU_SHAPES = (
    Shape(16, 12, 1024, 64, causal=True),
    Shape(16, 12, 1024, 64, causal=False),
    Shape(4, 16, 2048, 128, causal=True),
    Shape(4, 16, 2048, 128, causal=False),
    Shape(4, 12, 512, 64, causal=True, padded=True),
)
CPU_SHAPES = (
    Shape(2, 2, 64, 16, causal=True),
    Shape(2, 2, 64, 16, causal=False),
    Shape(2, 3, 48, 32, causal=True, padded=True),
)


@dataclass
class Row:
    backend: str
    dtype: str
    shape: str
    status: str  # "pass", "FAIL", "skip" (cannot run here; `note` says why) or "error"
    out_rel_err: float | None = None
    grad_rel_err: float | None = None
    tolerance: float | None = None
    seconds: float | None = None
    note: str = ""


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.double(), ref.double()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-30))


def random_inputs(shape: Shape, dtype: torch.dtype, device: str, generator: torch.Generator):
    """Fresh normal q, k, v (batch, heads, seq, dim), an output gradient (batch, seq, heads, dim) and,
    for a `padded` shape, a padding mask (batch, seq) with a different length per sequence."""
    size = (shape.batch, shape.heads, shape.seq, shape.head_dim)
    q, k, v = (torch.randn(size, generator=generator, device=device, dtype=torch.float32) for _ in range(3))
    grad_out = torch.randn(shape.batch, shape.seq, shape.heads, shape.head_dim, generator=generator, device=device)
    mask = None
    if shape.padded:  # left-aligned real tokens, each sequence a different length (>= a quarter)
        lengths = torch.randint(shape.seq // 4, shape.seq + 1, (shape.batch,), generator=generator, device=device)
        lengths[0] = shape.seq
        mask = torch.arange(shape.seq, device=device)[None, :] < lengths[:, None]
    return (q.to(dtype), k.to(dtype), v.to(dtype)), grad_out.to(dtype), mask


def _run(name: str, qkv, grad_out, mask, causal: bool, scale: float):
    q, k, v = (t.detach().clone().requires_grad_() for t in qkv)
    out = attention.attend(name, q, k, v, causal=causal, scale=scale, padding_mask=mask)
    if mask is not None:  # padded query rows carry no meaning; compare real tokens only
        keep = mask[:, :, None, None].to(out.dtype)
        out = out * keep
    out.backward(grad_out)
    return out.detach(), (q.grad, k.grad, v.grad)


def _reference(qkv, grad_out, mask, causal: bool, scale: float):
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _run("eager", [t.float() for t in qkv], grad_out.float(), mask, causal, scale)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _attempt(row, call, *args):
    """`call(*args)`, or None with the row saying why: skipped with the backend's own refusal (an
    `AttentionError`), or an error (a crash is a result here, not the end of the check)."""
    try:
        return call(*args)
    except AttentionError as err:
        row.status, row.note = "skip", str(err)
    except Exception as err:
        row.status, row.note = "error", f"{type(err).__name__}: {err}"[:500]
    return None


def check_kernels(
    backends: list[str],
    dtypes: list[torch.dtype],
    shapes=None,
    device: str | None = None,
    seed: int = 0,
    machine: env.Machine | None = None,
) -> list[Row]:
    """Every backend x dtype x shape against the fp32 reference; a backend that cannot run here is
    recorded as skipped with the reason `attention.why_not` gives."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = machine or env.probe()
    shapes = shapes or (GPU_SHAPES if device == "cuda" else CPU_SHAPES)
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for dtype in dtypes:
        for shape in shapes:
            qkv, grad_out, mask = random_inputs(shape, dtype, device, generator)
            scale = shape.head_dim**-0.5
            ref_out, ref_grads = _reference(qkv, grad_out, mask, shape.causal, scale)
            for name in backends:
                row = Row(name, str(dtype).removeprefix("torch."), str(shape), "skip", tolerance=TOLERANCE[dtype])
                rows.append(row)
                reason = attention.why_not(name, machine, dtype=dtype, head_dim=shape.head_dim)
                if reason:
                    row.note = reason
                    continue
                start = time.perf_counter()
                if (ran := _attempt(row, _run, name, qkv, grad_out, mask, shape.causal, scale)) is None:
                    continue
                out, grads = ran
                if device == "cuda":
                    torch.cuda.synchronize()
                row.seconds = round(time.perf_counter() - start, 4)
                row.out_rel_err = rel_err(out, ref_out)
                row.grad_rel_err = max(rel_err(g, r) for g, r in zip(grads, ref_grads, strict=True))
                ok = all(math.isfinite(e) and e < row.tolerance for e in (row.out_rel_err, row.grad_rel_err))
                row.status = "pass" if ok else "FAIL"
    return rows


@dataclass
class ModelRow:
    backend: str
    size: str
    precision: str
    status: str
    loss: float | None = None
    loss_diff: float | None = None  # |loss - eager loss|
    grad_norm_rel_diff: float | None = None
    note: str = ""


def check_model(
    backends: list[str],
    size: str = "124M",
    batch: int = 4,
    seq_len: int = 1024,
    device: str | None = None,
    precision: str | None = None,
    seed: int = 0,
    machine: env.Machine | None = None,
    model_impl: str = "hf",
) -> list[ModelRow]:
    """GPT-2 `size` forward+backward with each backend on one batch; loss and gradient norm
    against the eager backend. Tolerances: loss within 0.5% of eager, gradient norm within 3%
    under half precision (0.01% and 0.1% in fp32). `model_impl`: transformers' GPT-2 (`hf`) or the
    project's compact one (`vanilla`, which calls the backends through `attention.attend`)."""
    from vanilla_flash.models import gpt2, vanilla
    from vanilla_flash.training import precision as prec

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = machine or env.probe()
    precision = precision or prec.policy(machine)
    dtype = prec.compute_dtype(precision)
    torch.manual_seed(seed)
    net = (vanilla.build if model_impl == "vanilla" else gpt2.build)(size, attn="eager", seq_len=seq_len).to(device)
    label = size if model_impl == "hf" else f"{size} {model_impl}"
    ids = torch.randint(0, gpt2.GPT2_VOCAB, (batch, seq_len), device=device)
    half = dtype != torch.float32
    loss_tol, grad_tol = (5e-3, 3e-2) if half else (1e-4, 1e-3)

    def loss_and_grad_norm(name: str):
        gpt2.set_attention(net, name)
        net.zero_grad(set_to_none=True)
        with prec.autocast(precision, device):
            loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        norm = torch.sqrt(sum(p.grad.float().pow(2).sum() for p in net.parameters() if p.grad is not None))
        return loss.item(), norm.item()

    ref_loss, ref_norm = loss_and_grad_norm("eager")
    rows = [ModelRow("eager", label, precision, "pass", ref_loss, 0.0, 0.0, "reference")]
    for name in backends:
        if name == "eager":
            continue
        row = ModelRow(name, label, precision, "skip")
        rows.append(row)
        reason = attention.why_not(name, machine, dtype=dtype, head_dim=net.config.n_embd // net.config.n_head)
        if reason:
            row.note = reason
            continue
        if (ran := _attempt(row, loss_and_grad_norm, name)) is None:
            continue
        loss, norm = ran
        row.loss = loss
        row.loss_diff = abs(loss - ref_loss)
        row.grad_norm_rel_diff = abs(norm - ref_norm) / ref_norm
        ok = math.isfinite(loss) and row.loss_diff < loss_tol * ref_loss and row.grad_norm_rel_diff < grad_tol
        row.status = "pass" if ok else "FAIL"
    gpt2.set_attention(net, "eager")
    return rows


@dataclass
class PaddedRow:
    backend: str
    padding: str  # "left" or "right": where the shorter sequence's padding sits
    head_dim: int
    compiled: bool
    precision: str
    status: str
    rel_err: float | None = None  # of the logits on the real tokens, against eager in float32
    tolerance: float | None = None
    note: str = ""


# transformers' GPT-2 with an odd head dim (48) and, on a GPU, an odd length: the sizes of the
# battery that found `auto` dropping the padding mask (relative error 0.136 on CPU, 0.186 on an H100);
# on a GPU also GPT-2's own head dim, 64, which every flash-attn build has
PADDED_MODEL_GPU = {"n_layer": 3, "n_head": 5, "n_embd": 240, "seq_len": 777}
PADDED_MODEL_GPU_64 = {"n_layer": 3, "n_head": 4, "n_embd": 256, "seq_len": 777}
PADDED_MODEL_CPU = {"n_layer": 2, "n_head": 3, "n_embd": 96, "seq_len": 100}
PADDED_TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 1e-2, torch.float32: 1e-4}


def padded_batch(seq_len: int, side: str, device, generator: torch.Generator, vocab: int = 1000):
    """Two sequences of token ids and their padding mask (1 = real token): the first whole, the
    second 40% shorter, padded on the left (as batched generation pads) or on the right."""
    ids = torch.randint(0, vocab, (2, seq_len), generator=generator, device=device)
    mask = torch.ones(2, seq_len, dtype=torch.long, device=device)
    pad = seq_len * 2 // 5
    if side == "left":
        mask[1, :pad] = 0
    else:
        mask[1, seq_len - pad :] = 0
    return ids, mask


def check_padded_model(
    backends: list[str],
    precision: str | None = None,
    compiled: tuple[bool, ...] = (False, True),
    sides: tuple[str, ...] = ("left", "right"),
    device: str | None = None,
    machine: env.Machine | None = None,
    sizes: dict | None = None,
    seed: int = 0,
) -> list[PaddedRow]:
    """transformers' GPT-2 on padded batches (`padded_batch`), eagerly and under torch.compile, with
    each backend: its logits on the real tokens against eager attention in float32. A backend that
    refuses a padding mask by name (`AttentionError`) is recorded as skipped; one that answers
    wrongly, as FAIL."""
    from vanilla_flash.models import gpt2
    from vanilla_flash.training import precision as prec

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = machine or env.probe()
    precision = precision or prec.policy(machine)
    dtype = prec.compute_dtype(precision)
    sizes = dict(sizes or (PADDED_MODEL_GPU if device == "cuda" else PADDED_MODEL_CPU))
    seq_len = sizes.pop("seq_len")
    torch.manual_seed(seed)
    net = gpt2.build("tiny", attn="eager", seq_len=seq_len, vocab_size=1000, **sizes).to(device).eval()
    head_dim = net.config.n_embd // net.config.n_head
    generator = torch.Generator(device=device).manual_seed(seed)

    def logits(name: str, compile_it: bool, ids, mask, autocast: bool = True):
        gpt2.set_attention(net, name)
        torch._dynamo.reset()  # a fresh graph per backend: the backend's name is read while tracing
        forward = torch.compile(net) if compile_it else net
        with torch.no_grad(), prec.autocast(precision if autocast else "32-true", device):
            return forward(input_ids=ids, attention_mask=mask).logits.float()

    rows = []
    for side in sides:
        ids, mask = padded_batch(seq_len, side, device, generator)
        real = mask.bool()
        ref = logits("eager", False, ids, mask, autocast=False)[real]
        for name in backends:
            for compile_it in compiled:
                row = PaddedRow(name, side, head_dim, compile_it, precision, "skip", tolerance=PADDED_TOLERANCE[dtype])
                rows.append(row)
                if reason := attention.why_not(name, machine, dtype=dtype, head_dim=head_dim, training=False):
                    row.note = reason
                    continue
                if (out := _attempt(row, logits, name, compile_it, ids, mask)) is None:
                    continue
                out = out[real]
                row.rel_err = rel_err(out, ref)
                row.status = "pass" if math.isfinite(row.rel_err) and row.rel_err < row.tolerance else "FAIL"
    gpt2.set_attention(net, "eager")
    torch._dynamo.reset()
    return rows


def run(
    backends: list[str] | None = None,
    quick: bool = False,
    model_size: str | None = None,
) -> dict:
    """Kernel and model checks for every backend on this machine, with the environment."""
    report = provenance.describe()
    machine = report.machine
    backends = backends or [b for b in attention.names() if b != "eager"]
    on_gpu = machine.device == "cuda"
    dtypes = [getattr(torch, name) for name in machine.target.dtypes]
    shapes = None
    if quick:
        shapes = (GPU_SHAPES[0], GPU_SHAPES[-1]) if on_gpu else CPU_SHAPES[:1]
    kernels = check_kernels(backends, dtypes, shapes, machine=machine)
    size = model_size or ("124M" if on_gpu else "tiny")
    models = []
    for dtype in dtypes:
        for model_impl in ("hf", "vanilla"):
            models += check_model(
                ["eager", *backends],
                size=size,
                seq_len=1024 if on_gpu else 64,
                batch=4 if on_gpu else 2,
                precision=_PRECISION[dtype],
                machine=machine,
                model_impl=model_impl,
            )
    padded = []
    for sizes in (PADDED_MODEL_GPU, PADDED_MODEL_GPU_64) if on_gpu else (PADDED_MODEL_CPU,):
        padded += check_padded_model(
            backends,
            precision=_PRECISION[dtypes[0]],
            machine=machine,
            sizes=sizes,
            compiled=(False,) if quick else (False, True),
        )
    failed = [r for r in [*kernels, *models, *padded] if r.status in ("FAIL", "error")]
    notes = list(report.notes)
    if on_gpu and machine.flash_attn_major() != 2:
        notes.append(
            "flash-attn 2.x is not installed here, so flash_attn_2 is not checked on this GPU; its call code is "
            "tested on CPU with the library faked at the import boundary (tests/attention/test_flash_attn_calls.py),"
            " and sdpa_flash is FlashAttention-2 compiled into PyTorch."
        )
    return {
        **provenance.provenance(report),
        "tolerance": {str(k).removeprefix("torch."): v for k, v in TOLERANCE.items()},
        "kernels": [asdict(r) for r in kernels],
        "model": [asdict(r) for r in models],
        "padded_model": [asdict(r) for r in padded],
        "notes": notes,
        "ok": not failed,
    }


def format_table(result: dict) -> str:
    def num(x):
        return "" if x is None else f"{x:.2e}"

    lines = [f"{'backend':<15} {'dtype':<9} {'shape':<32} {'status':<6} {'out err':>9} {'grad err':>9}  note"]
    for r in result["kernels"]:
        note = r["note"] if r["status"] != "pass" else ""
        lines.append(
            f"{r['backend']:<15} {r['dtype']:<9} {r['shape']:<32} {r['status']:<6} "
            f"{num(r['out_rel_err']):>9} {num(r['grad_rel_err']):>9}  {note[:90]}".rstrip()
        )
    lines.append("")
    lines.append(
        f"{'model backend':<15} {'size':<12} {'precision':<11} {'status':<6} {'loss':>8} {'|dloss|':>9} "
        f"{'dgrad':>9}  note"
    )
    for r in result["model"]:
        loss = "" if r["loss"] is None else f"{r['loss']:.4f}"
        note = r["note"] if r["status"] != "pass" else ""
        lines.append(
            f"{r['backend']:<15} {r['size']:<12} {r['precision']:<11} {r['status']:<6} {loss:>8} "
            f"{num(r['loss_diff']):>9} {num(r['grad_norm_rel_diff']):>9}  {note[:90]}".rstrip()
        )
    lines.append("")
    lines.append(
        f"{'padded batch':<15} {'padding':<8} {'head dim':<9} {'compiled':<9} {'precision':<11} "
        f"{'status':<6} {'logit err':>9}  note"
    )
    for r in result.get("padded_model", []):
        note = r["note"] if r["status"] != "pass" else ""
        lines.append(
            f"{r['backend']:<15} {r['padding']:<8} {r['head_dim']:<9} {'yes' if r['compiled'] else 'no':<9} "
            f"{r['precision']:<11} "
            f"{r['status']:<6} {num(r['rel_err']):>9}  {note[:90]}".rstrip()
        )
    lines.append("")
    lines.extend(f"note: {n}" for n in result.get("notes", []))
    lines.append("all checks passed" if result["ok"] else "SOME CHECKS FAILED")
    return "\n".join(lines)
