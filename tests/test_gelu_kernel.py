"""`gelu: triton`: the MLP's bias + GELU as two Triton kernels, run here in Triton's interpreter on
a CPU (the GPU runs the compiled kernels; their speed is for `bench speed` on the H200). They give
what `F.gelu(pre + bias, approximate="tanh")` and autograd give, and the vanilla model with them the
loss and gradients of the model without them."""

import copy
import os
import re

import pytest
import torch
import torch.nn.functional as F
from triton_processes import without_the_interpreter
from vanilla_flash import vanilla_gpt
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import ConfigError

pytest.importorskip("triton")  # requirements-dev.txt installs it; the GPU images have it


@pytest.fixture
def gelu_kernel():
    """vanilla_flash.gelu_kernel, its kernels run by Triton's interpreter (conftest.py turns it on)."""
    assert os.environ["TRITON_INTERPRET"] == "1"
    from vanilla_flash import gelu_kernel

    return gelu_kernel


# tiles of 32 x 256 and backward programs of 512 rows: shapes that end inside a tile, one column
# tile and several, one backward program and two (the bias gradient summed from both)
@pytest.mark.parametrize("n_rows, n_cols", [(37, 300), (600, 257), (5, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_kernels_give_gelu_of_pre_plus_bias_and_its_gradients(gelu_kernel, n_rows, n_cols, dtype):
    gen = torch.Generator().manual_seed(n_rows)
    pre = (torch.randn(n_rows, n_cols, generator=gen) * 4).to(dtype).requires_grad_()
    bias = torch.randn(n_cols, generator=gen).requires_grad_()
    grad = torch.randn(n_rows, n_cols, generator=gen).to(dtype)
    act = gelu_kernel.bias_gelu(pre, bias)
    act.backward(grad)
    ref_pre, ref_bias = pre.detach().double().requires_grad_(), bias.detach().double().requires_grad_()
    ref = F.gelu(ref_pre + ref_bias, approximate="tanh")
    ref.backward(grad.double())
    assert act.dtype == pre.grad.dtype == dtype and bias.grad.dtype == torch.float32
    # float32 arithmetic; bf16 outputs within a unit in the last place (2^-7 relative: the interpreter's
    # conversion truncates), an absolute error near GELU's zeros
    rel, near_zero = (1e-5, 1e-5) if dtype == torch.float32 else (2**-7, 1e-3)
    torch.testing.assert_close(act.double(), ref, rtol=rel, atol=near_zero)
    torch.testing.assert_close(pre.grad.double(), ref_pre.grad, rtol=rel, atol=near_zero)
    torch.testing.assert_close(bias.grad.double(), ref_bias.grad, rtol=1e-5, atol=1e-4)  # summed in float32


def test_far_out_on_either_side_it_is_zero_and_the_identity(gelu_kernel):
    pre = torch.tensor([[-1000.0, -30.0, -5.0, 0.0, 5.0, 30.0, 1000.0]], requires_grad=True)
    act = gelu_kernel.bias_gelu(pre, torch.zeros(7))
    act.sum().backward()
    assert torch.isfinite(act).all() and torch.isfinite(pre.grad).all()
    torch.testing.assert_close(act[0, [0, 1, 5, 6]], torch.tensor([0.0, 0.0, 30.0, 1000.0]))
    torch.testing.assert_close(pre.grad[0, [0, 1, 5, 6]], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert -3e-7 < act[0, 2] < -1e-7  # -5 * sigmoid(-16.9): no cancellation to zero


def test_the_vanilla_model_with_the_kernels_has_the_same_loss_and_gradients(gelu_kernel):
    torch.manual_seed(0)
    plain = vanilla_gpt.build("tiny", seq_len=64, n_layer=2, loss="chunked")
    kernels = copy.deepcopy(plain)
    for block in kernels.transformer.h:
        block.mlp.gelu = "triton"
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(6))
    a, b = plain(input_ids=ids, labels=ids).loss, kernels(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    a.backward()
    b.backward()
    for (name, p), q in zip(plain.named_parameters(), kernels.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert vanilla_gpt.build("tiny", seq_len=16, n_layer=1, gelu="triton").transformer.h[0].mlp.gelu == "triton"


def test_where_the_kernels_cannot_run_the_error_says_what_to_use(gelu_kernel, monkeypatch):
    model = vanilla_gpt.build("tiny", seq_len=16, n_layer=1, gelu="triton")
    ids = torch.randint(0, 50257, (1, 16))
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # a CPU, no interpreter: the kernels cannot run here
    with pytest.raises(ConfigError, match="gelu: 'triton' needs a CUDA GPU, not cpu; use gelu: torch"):
        model(input_ids=ids, labels=ids)
    monkeypatch.setattr(vanilla_gpt, "gelu_kernel", None)  # no Triton at all
    with pytest.raises(ConfigError, match="gelu: 'triton' needs Triton, which this Python cannot import"):
        model(input_ids=ids, labels=ids)


def test_the_config_takes_it_for_the_vanilla_model_only():
    assert TrainConfig(model_impl="vanilla", gelu="triton").gelu == "triton"
    with pytest.raises(ConfigError, match="gelu: 'triton' needs model_impl: vanilla"):
        TrainConfig(model_impl="hf", gelu="triton")
    with pytest.raises(ConfigError, match="gelu"):
        TrainConfig(model_impl="vanilla", gelu="erf")


TRACE = """
import torch
from torch._functorch.aot_autograd import aot_module_simplified
from vanilla_flash import gelu_kernel, vanilla_gpt

graphs = {}


class Traced(Exception):
    pass


def backend(gm, example_inputs):
    def forward_compiler(graph, _):
        graphs["forward"] = graph
        raise Traced  # traced: nothing is run (no GPU here to launch the kernels on)

    return aot_module_simplified(gm, example_inputs, fw_compiler=forward_compiler)


gelu_kernel.usable = lambda device: True  # trace as on a GPU
model = vanilla_gpt.build("tiny", seq_len=64, n_layer=3, loss="chunked", gelu="triton")
ids = torch.randint(0, 50257, (2, 64))
try:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.compile(model, backend=backend, fullgraph=True)(input_ids=ids, labels=ids)
except Exception as err:
    assert "Traced" in repr(err), repr(err)
graph = graphs["forward"].graph
calls = [n for n in graph.nodes if "triton_kernel_wrapper" in str(n.target)]
print("kernel calls", len(calls))
kept = {n.name for n in [n for n in graph.nodes if n.op == "output"][0].args[0] if hasattr(n, "name")}
print("activations kept", sum(any(a.name in kept for a in n.users) or n.name in kept
                              for c in calls for n in c.users))
"""


def test_under_torch_compile_there_is_one_forward_kernel_per_layer_and_its_output_is_kept():
    """What the GPU compiles: dynamo traces the model with the kernels in one graph (fullgraph) and
    AOT autograd keeps one forward kernel call per layer, whose activation (the next matmul's input)
    the backward pass takes as saved rather than computing it again. Traced in a process of its own
    with the interpreter off, run nowhere."""
    out = without_the_interpreter(TRACE)
    assert "kernel calls 3" in out
    assert int(re.search(r"activations kept (\d+)", out).group(1)) >= 3


COMPILE = """
import pathlib, subprocess, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from vanilla_flash import gelu_kernel as gk

tool = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
tiles = {"BLOCK_ROWS": gk.BLOCK_ROWS, "BLOCK_COLS": gk.BLOCK_COLS}
kernels = {
    "forward": (gk._bias_gelu_forward, {"pre": "*bf16", "bias": "*fp32", "act": "*bf16", "n_rows": "i32",
                                        "n_cols": "i32"}, tiles),
    "backward": (gk._bias_gelu_backward, {"grad_act": "*bf16", "pre": "*bf16", "bias": "*fp32", "grad_pre": "*bf16",
                                          "partial_bias": "*fp32", "n_rows": "i32", "n_cols": "i32"},
                 {**tiles, "ROW_STEPS": gk.ROW_STEPS}),
}
for name, (fn, signature, constexprs) in kernels.items():
    signature = {**signature, **{k: "constexpr" for k in constexprs}}
    kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                            target=GPUTarget("cuda", 90, 32), options={"num_warps": gk.WARPS})
    cubin = pathlib.Path(tempfile.mkdtemp()) / "kernel.cubin"
    cubin.write_bytes(kernel.asm["cubin"])
    usage = subprocess.run([str(tool), "--dump-resource-usage", str(cubin)], capture_output=True, text=True).stdout
    print(name, usage.replace("\\n", " "))
"""


def test_the_kernels_compile_for_an_h200_without_spilling_and_several_programs_fit():
    """Triton compiles both kernels for sm_90 here, without a GPU (it ships ptxas), at the module's
    tile sizes: what the interpreter does not check is checked here; no thread spills registers to
    local memory (STACK:0), and the registers a thread takes let at least two programs run on a
    multiprocessor (65536 registers), for loads enough in flight."""
    from vanilla_flash import gelu_kernel

    out = without_the_interpreter(COMPILE)
    for name in ("forward", "backward"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert re.search(r"STACK:0\b", line), line
        assert 2 * int(re.search(r"REG:(\d+)", line).group(1)) * gelu_kernel.WARPS * 32 <= 65536, line
