"""``python -m vanilla_flash COMMAND``: the library's jobs from a shell (and from ``make``).

env [--json]           what this machine is and which attention backends run here
check [--out FILE]     every backend against an fp32 reference, kernels and GPT-2
smoke                  one tiny GPT-2 training step with the `auto` backend
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _env(args) -> int:
    from vanilla_flash import env

    report = env.describe()
    print(report.to_json() if args.json else report)
    return 0


def _check(args) -> int:
    from vanilla_flash import check

    backends = args.backends.split(",") if args.backends else None
    result = check.run(backends=backends, quick=args.quick, model_size=args.model_size)
    print(check.format_table(result))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
    return 0 if result["ok"] else 1


def _smoke(args) -> int:
    import torch

    from vanilla_flash import attention, env, precision
    from vanilla_flash import model as gpt2

    machine = env.probe()
    device = "cuda" if machine.device == "cuda" else "cpu"
    prec = precision.policy(machine)
    torch.manual_seed(0)
    net = gpt2.build(args.size, attn="auto").to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ids = torch.randint(0, gpt2.GPT2_VOCAB, (2, min(64, net.config.n_positions)), device=device)
    losses = []
    for _ in range(args.steps):
        with precision.autocast(prec, device):
            loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    head_dim = net.config.n_embd // net.config.n_head
    chosen = attention.pick(machine, precision.autocast_dtype(prec) or torch.float32, head_dim, ids.shape[1])
    print(
        f"GPT-2 {args.size} ({gpt2.parameter_count(net) / 1e6:.2f}M parameters) on {machine.label}, "
        f"precision {prec}, attention auto -> {chosen}"
    )
    print("loss per step: " + " ".join(f"{x:.3f}" for x in losses))
    if not losses[-1] < losses[0]:
        print("the loss did not go down: something is wrong", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vanilla_flash", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("env", help="environment report: GPU, versions, which attention backends run here")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=_env)

    c = sub.add_parser("check", help="check every backend against an fp32 reference (kernels and GPT-2)")
    c.add_argument("--out", help="write the full results (JSON with the environment) here")
    c.add_argument("--backends", help="comma-separated backends (default: all)")
    c.add_argument("--quick", action="store_true", help="fewer shapes")
    c.add_argument("--model-size", help="GPT-2 size for the model check (default 124M on GPU, tiny on CPU)")
    c.set_defaults(func=_check)

    s = sub.add_parser("smoke", help="a few tiny GPT-2 training steps with the auto backend")
    s.add_argument("--size", default="tiny")
    s.add_argument("--steps", type=int, default=3)
    s.set_defaults(func=_smoke)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
