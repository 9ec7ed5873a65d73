import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Triton kernels (vanilla_flash.loss_kernel) run in Triton's interpreter here: it must be on before
# triton is first imported, for triton's own library functions are made then
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from vanilla_flash.env import Machine  # noqa: E402


def gpu(name: str, cc: tuple[int, int], **kw) -> Machine:
    facts = dict(device="cuda", gpu_name=name, capability=cc, gpu_memory_gib=80.0, gpu_count=1, cudnn=91900,
                 cuda="13.0", torch="2.11.0")  # fmt: skip
    facts.update(kw)
    return Machine(**facts)


CPU = Machine(torch="2.13.0")
T4 = gpu("Tesla T4", (7, 5), gpu_memory_gib=15.0, colab=True)
A100 = gpu("NVIDIA A100-SXM4-40GB", (8, 0))
A10 = gpu("NVIDIA A10G", (8, 6))
L4 = gpu("NVIDIA L4", (8, 9))
H100 = gpu("NVIDIA H100 80GB HBM3", (9, 0))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
