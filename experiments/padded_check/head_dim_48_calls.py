"""flash-attn 2.8.3 built with the head-dim-64 kernels only (`build fa2 --head-dims 64`), called at head
dim 48 through `attention.attend` and through a GPT-2 forward: each must stop with an `AttentionError`
that names the build's limit before flash-attn is called (flash-attn's own RuntimeError escaped before);
head dim 64 runs, checked against eager in float32. Writes the outcome as JSON to the path given.
    python3 experiments/padded_check/head_dim_48_calls.py OUT.json   (flash-attn 2.8.3 first on the path)
"""

import json
import sys

import torch
from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.errors import AttentionError
from vanilla_flash.models import gpt2
from vanilla_flash.results import provenance


def gpt2_forward():
    net = gpt2.build("tiny", attn="flash_attn_2", n_layer=3, n_head=5, n_embd=240, seq_len=777, vocab_size=1000)
    net = net.cuda().to(torch.bfloat16)
    return net(input_ids=torch.randint(0, 1000, (2, 777), device="cuda"))


out = {}
q, k, v = (torch.randn(2, 5, 777, 48, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for what, call in {"attend": lambda: attention.attend("flash_attn_2", q, k, v), "gpt2_forward": gpt2_forward}.items():
    try:
        call()
        out[what] = "no error"
    except AttentionError as err:
        out[what] = f"AttentionError: {err}"
    except Exception as err:
        out[what] = f"{type(err).__name__}: {err}"
q64 = torch.randn(2, 4, 777, 64, device="cuda", dtype=torch.bfloat16)
ref = attention.attend("eager", q64.float(), q64.float(), q64.float())
got = attention.attend("flash_attn_2", q64, q64, q64).float()
out["head_dim_64_rel_err"] = float((got - ref).norm() / ref.norm())
out["flash_attn"] = env.probe().flash_attn
out["gpu"] = torch.cuda.get_device_name()
print(json.dumps(out, indent=1))
provenance.write_json(sys.argv[1], out)
