"""`loss: chunked_triton`: the chunked loss's softmax step as one Triton kernel, run here in Triton's
interpreter on a CPU (the GPU runs the compiled kernel; its speed is for the speed experiment on the H200).
It gives the per-row losses and d loss / d logits that `models.vanilla.softmax_cross_entropy` gives,
and the vanilla model with it the loss and gradients of the full loss."""

import copy
import os

import pytest
import torch
from vanilla_flash.errors import ConfigError
from vanilla_flash.models import vanilla as vanilla_gpt

pytest.importorskip("triton")  # requirements-dev.txt installs it; the GPU images have it


@pytest.fixture
def loss_kernel():
    """vanilla_flash.models.loss_kernel, its kernel run by Triton's interpreter (conftest.py turns it on)."""
    assert os.environ["TRITON_INTERPRET"] == "1"
    from vanilla_flash.models import loss_kernel

    return loss_kernel


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n_rows, n_cols", [(7, 5000), (4, 9000)])  # rows > programs; a row in two steps
def test_the_kernel_gives_the_losses_and_gradients_of_the_pytorch_softmax(loss_kernel, dtype, n_rows, n_cols):
    gen = torch.Generator().manual_seed(n_cols)
    logits = (torch.randn(n_rows, n_cols, generator=gen) * 3).to(dtype)
    targets = torch.randint(0, n_cols, (n_rows,), generator=gen)
    targets[2] = -100  # not a target: no loss, no gradient
    targets[0] = n_cols - 1  # the last column
    losses, grads = loss_kernel.softmax_cross_entropy_grad(logits, targets)
    want_losses, want_grads = vanilla_gpt.softmax_cross_entropy(logits, targets)
    assert losses.dtype == torch.float32 and grads.dtype == dtype and grads.shape == logits.shape
    torch.testing.assert_close(losses, want_losses, rtol=1e-5, atol=1e-5)
    ulp = 2**-8 if dtype == torch.bfloat16 else 1e-6  # bf16 rounding of values near -1 (the targets' columns)
    torch.testing.assert_close(grads.float(), want_grads.float(), rtol=0, atol=ulp)
    assert losses[2] == 0 and not grads[2].any()
    assert grads.float().sum(dim=1)[[0, 1, 3]].abs().max() < 1e-2  # softmax sums to one, minus the one-hot


def test_the_vanilla_model_with_the_kernel_has_the_full_loss_and_its_gradients(loss_kernel, monkeypatch):
    torch.manual_seed(0)
    full = vanilla_gpt.build("tiny", seq_len=64, n_layer=2, loss="full")
    kernel = copy.deepcopy(full)
    kernel.loss = "chunked_triton"
    monkeypatch.setattr(vanilla_gpt, "CHUNK_TOKENS", 50)  # 126 positions: three chunks
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(6))
    labels = ids.clone()
    labels[1, :8] = -100
    a, b = full(input_ids=ids, labels=labels).loss, kernel(input_ids=ids, labels=labels).loss
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    a.backward()
    b.backward()
    for (name, p), q in zip(full.named_parameters(), kernel.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_where_the_kernel_cannot_run_the_error_says_what_to_use(loss_kernel, monkeypatch):
    model = vanilla_gpt.build("tiny", seq_len=16, n_layer=1, loss="chunked_triton")
    ids = torch.randint(0, 50257, (1, 16))
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # a CPU, no interpreter: the kernel cannot run here
    with pytest.raises(ConfigError, match="needs a CUDA GPU, not cpu; use loss: chunked"):
        model(input_ids=ids, labels=ids)
    monkeypatch.setattr(vanilla_gpt, "loss_kernel", None)  # no Triton at all
    with pytest.raises(ConfigError, match="needs Triton, which this Python cannot import; use loss: chunked"):
        model(input_ids=ids, labels=ids)
    with torch.no_grad():  # evaluation needs no gradients, and so no kernel
        assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


def _without_the_interpreter(script: str) -> str:
    """`script`'s output, run by Python in a process of its own with Triton's interpreter off."""
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


TRACE = """
import torch
from torch._functorch.aot_autograd import aot_module_simplified
from vanilla_flash.models import loss_kernel
from vanilla_flash.models import vanilla as vanilla_gpt

graphs = {}


class Traced(Exception):
    pass


def backend(gm, example_inputs):
    def forward_compiler(graph, _):
        graphs["forward"] = graph
        raise Traced  # traced: nothing is run (no GPU here to launch the kernel on)

    return aot_module_simplified(gm, example_inputs, fw_compiler=forward_compiler)


loss_kernel.usable = lambda device: True  # trace as on a GPU
model = vanilla_gpt.build("tiny", seq_len=64, n_layer=2, loss="chunked_triton")
vanilla_gpt.CHUNK_TOKENS = 50  # 126 positions: three chunks
ids = torch.randint(0, 50257, (2, 64))
try:
    torch.compile(model, backend=backend, fullgraph=True)(input_ids=ids, labels=ids)
except Exception as err:
    assert "Traced" in repr(err), repr(err)
calls = [n for n in graphs["forward"].graph.nodes if "triton_kernel_wrapper" in str(n.target)]
print("kernel calls", len(calls))
"""


def test_under_torch_compile_the_kernel_is_traced_into_the_graph_once_per_chunk():
    """What the GPU compiles: dynamo traces the model with the kernel in one graph (fullgraph) and
    AOT autograd keeps one call of the Triton kernel per chunk. Traced in a process of its own with
    the interpreter off (a kernel is only traced as such when Triton compiles it), run nowhere."""
    assert "kernel calls 3" in _without_the_interpreter(TRACE)


COMPILE = """
import pathlib, subprocess, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from vanilla_flash.models import loss_kernel as lk

signature = {"logits": "*bf16", "targets": "*i64", "losses": "*fp32", "grads": "*bf16", "n_rows": "i32",
             "n_programs": "i32", "n_cols": "constexpr", "rows_per_program": "constexpr", "BLOCK": "constexpr"}
source = ASTSource(fn=lk._softmax_cross_entropy_grad, signature=signature,
                   constexprs={"n_cols": 50304, "rows_per_program": 63, "BLOCK": lk.BLOCK})
kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": lk.WARPS})
cubin = pathlib.Path(tempfile.mkdtemp()) / "kernel.cubin"
cubin.write_bytes(kernel.asm["cubin"])
tool = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
print(subprocess.run([str(tool), "--dump-resource-usage", str(cubin)], capture_output=True, text=True).stdout)
"""


def test_the_kernel_compiles_for_an_h200_and_two_programs_fit_on_a_multiprocessor():
    """Triton compiles the kernel for sm_90 here, without a GPU (it ships ptxas), at the module's
    setting: what the interpreter does not check (types, constexpr globals) is checked here, and the
    registers a thread takes let two programs of WARPS warps run on one multiprocessor at a time
    (65536 registers), as the module's comment says."""
    import re

    from vanilla_flash.models import loss_kernel

    registers = int(re.search(r"REG:(\d+)", _without_the_interpreter(COMPILE)).group(1))
    assert 2 * registers * loss_kernel.WARPS * 32 <= 65536, registers
