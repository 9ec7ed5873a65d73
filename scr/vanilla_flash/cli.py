"""``python -m vanilla_flash COMMAND``: the library's jobs from a shell (and from ``make``).

target [NAME] [--field F]   this machine's target (cpu, t4, ampere, hopper), or a field of one
env [--json]                what this machine is and which attention backends run here
check [--out FILE]          every backend against an fp32 reference, kernels and GPT-2
smoke                       a few tiny GPT-2 training steps with the `auto` backend
build fa1|fa2 [--archs]     build flash-attn 1.0.9 or 2.x from source into a cached wheel
train --config F [--set]    train GPT-2 on Wikisource with Lightning
tokens                      tokens per word: GPT-2's BPE against a BPE trained on the text
bench WHAT                  benchmarks: attention kernels, training, Lightning overhead, model code
report FILES                plots and Markdown tables from benchmark result files
notebooks [--target]        execute the notebooks with papermill and a target's parameters

A `VanillaFlashError` (a bad parameter, a missing library, data that cannot be had) is printed as
its message with exit status 2; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vanilla_flash import targets
from vanilla_flash.errors import ConfigError, VanillaFlashError


def _target(args) -> int:
    from vanilla_flash import env, targets

    target = targets.get(args.name) if args.name else targets.for_capability(env.capability())
    print(getattr(target, args.field) if args.field else target.name)
    return 0


def _env(args) -> int:
    from vanilla_flash.results import provenance

    report = provenance.describe()
    print(report.to_json() if args.json else report)
    return 0


def _check(args) -> int:
    from vanilla_flash.bench import check

    backends = args.backends.split(",") if args.backends else None
    result = check.run(backends=backends, quick=args.quick, model_size=args.model_size)
    print(check.format_table(result))
    if args.out:
        print(f"wrote {_write_json(result, args.out)}")
    return 0 if result["ok"] else 1


def _build(args) -> int:
    from vanilla_flash.builds import sources

    build = sources.build_fa1 if args.version == "fa1" else sources.build_fa2
    result = build(
        args.cache,
        source=args.source,
        archs=args.archs.split(",") if args.archs else None,
        head_dims=list(_ints(args.head_dims)) if args.head_dims else None,
        jobs=args.jobs,
        work_dir=args.work_dir or f"build/flash-attn-{args.version[-1]}",
        dry_run=args.dry_run,
    )
    print(result.wheel or "nothing built")
    return 0


def _smoke(args) -> int:
    import torch

    from vanilla_flash import env
    from vanilla_flash.attention import registry as attention
    from vanilla_flash.models import flops, gpt2
    from vanilla_flash.training import precision

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
    chosen = attention.pick(machine, precision.compute_dtype(prec), head_dim, ids.shape[1])
    print(
        f"GPT-2 {args.size} ({flops.parameter_count(net) / 1e6:.2f}M parameters) on {machine.label}, "
        f"precision {prec}, attention auto -> {chosen}"
    )
    print("loss per step: " + " ".join(f"{x:.3f}" for x in losses))
    if not losses[-1] < losses[0]:
        print("the loss did not go down: something is wrong", file=sys.stderr)
        return 1
    return 0


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, not {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _train(args) -> int:
    import logging

    from vanilla_flash.training import run as train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = _config(args)
    summary = train.train(cfg)
    if summary:
        keys = ("steps", "attention", "precision", "final", "tokens_per_s", "mfu", "peak_mem_gib", "seconds")
        print(json.dumps({k: summary.get(k) for k in keys}, indent=2, ensure_ascii=False))
        print(f"sample: {summary['sample']}")
        print(f"wrote {cfg.run_dir}/summary.json and {cfg.run_dir}/loss.png")
    return 0


def _config(args):
    """The TrainConfig of `--config` (a YAML file) with `--set` overrides."""
    from vanilla_flash.config import TrainConfig

    overrides = _overrides(args.set)
    return TrainConfig.from_yaml(args.config, **overrides) if args.config else TrainConfig.from_dict(overrides)


def _tokens(args) -> int:
    from vanilla_flash.training import data

    result = data.compare_tokenizers(args.lang, args.vocab_size, args.seed)
    print(f"tokens per word on the {args.lang} validation text ({result['val_words']} words):")
    for name, value in result["tokens_per_word"].items():
        print(f"  {name:<22} {value:.2f}")
    print(f"ratio gpt2 / trained: {result['ratio']:.2f}")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _write_json(result: dict, out: str) -> Path:
    from vanilla_flash.results import provenance

    return provenance.write_json(out, result)


def _write_result(result: dict, out: str | None) -> None:
    """The result as JSON, and its rows as CSV beside it."""
    if not out:
        return
    from vanilla_flash.results import report

    path = _write_json(result, out)
    report.write_csv(result["rows"], path.with_suffix(".csv"))
    print(f"wrote {path} and {path.with_suffix('.csv')}")


def _bench(args) -> int:
    from vanilla_flash.bench import attention as bench_attention
    from vanilla_flash.bench import training as bench_training
    from vanilla_flash.results import provenance, report

    if args.what == "attention":
        backends = args.backends.split(",") if args.backends else None
        result = bench_attention.run(
            backends,
            seq_lens=_ints(args.seq),
            head_dims=_ints(args.head_dims),
            dtypes=tuple(args.dtypes.split(",")),
            tokens=args.tokens,
            hidden=args.hidden,
            repeats=args.repeats,
            memory_seq_lens=_ints(args.memory_seq),
        )
        print("\n" + bench_attention.summary(result))
        _write_result(result, args.out)
        return 0
    result = {"kind": args.what, **provenance.provenance()}
    if args.what == "train":
        backends = tuple(args.backends.split(",")) if args.backends else None
        kwargs = {"backends": backends} if backends else {}
        result["rows"] = bench_training.train_grid(
            args.size,
            seq_lens=_ints(args.seq),
            tokens_per_step=args.tokens,
            steps=args.steps,
            compile=args.compile,
            **kwargs,
        )
    elif args.what == "impl":
        import torch

        from vanilla_flash.models import flash_attn_gpt as fa_gpt

        result["rows"] = bench_training.impl_grid(args.size, steps=args.steps)
        print("against the fastest Hugging Face GPT-2 row of this run (tokens/s ratio, peak memory ratio):")
        for r, ratio in zip(result["rows"], report.against_hf(result["rows"]), strict=True):
            name = f"{r['model_impl']} {r['attn']} fused {','.join(r['fused']) or '-'}"
            if ratio is None:
                print(f"  {name:<90} {r['status'][:60]}")
            else:
                memory = f"x{ratio[1]:.2f}" if ratio[1] is not None else "not measured"
                print(f"  {name:<90} speed x{ratio[0]:.2f}  memory {memory}")
        if torch.cuda.is_available() and fa_gpt.available() is None:
            result["logits"] = [fa_gpt.compare_logits(args.size, dtype=d) for d in (torch.float16, torch.bfloat16)]
            for r in result["logits"]:
                print(
                    f"same weights, {r['dtype']}: max |logit difference| {r['max_abs_diff']:.3g} "
                    f"(mean {r['mean_abs_diff']:.3g}, same argmax {r['same_argmax']:.1%})"
                )
    else:  # overhead
        row = bench_training.lightning_overhead(_config(args), steps=args.steps)
        result["rows"] = [row]
        lightning, bare = row["lightning_tokens_per_s"] / 1e3, row["bare_tokens_per_s"] / 1e3
        print(
            f"Lightning {lightning:.1f}k tok/s, bare loop {bare:.1f}k tok/s: "
            f"Lightning / bare = {row['lightning_over_bare']:.3f}"
        )
    _write_result(result, args.out)
    return 0


def _report(args) -> int:
    from vanilla_flash.results import report

    for path in report.render(args.results, args.out):
        print(f"wrote {path}")
    return 0


def _notebooks(args) -> int:
    from vanilla_flash import notebook

    sets = args.sets.split(",") if args.sets else None
    results = notebook.run(args.target, args.out, sets, args.notebooks or None, _overrides(args.set))
    failed = [(path, err) for path, err in results if err]
    print(f"{len(results) - len(failed)} of {len(results)} notebooks ran without error")
    for path, err in failed:
        print(f"  FAILED {path}: {err}")
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vanilla_flash", description=__doc__.split("\n\n")[0])
    p.add_argument("--debug", action="store_true", help="show the traceback of an error, not only its message")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("target", help="this machine's target (cpu, t4, ampere, hopper), or a field of one")
    g.add_argument("name", nargs="?", help="a target's name (default: this machine's)")
    g.add_argument("--field", help="print this field of the target instead of its name, e.g. requirements")
    g.set_defaults(func=_target)

    e = sub.add_parser("env", help="environment report: GPU, versions, which attention backends run here")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=_env)

    c = sub.add_parser("check", help="check every backend against an fp32 reference (kernels and GPT-2)")
    c.add_argument("--out", help="write the full results (JSON with the environment) here")
    c.add_argument("--backends", help="comma-separated backends (default: all)")
    c.add_argument("--quick", action="store_true", help="fewer shapes")
    c.add_argument("--model-size", help="GPT-2 size for the model check (default 124M on GPU, tiny on CPU)")
    c.set_defaults(func=_check)

    u = sub.add_parser("build", help="build flash-attn 1.0.9 or 2.x from source into a cached wheel")
    u.add_argument("version", choices=["fa1", "fa2"])
    u.add_argument("--archs", help="comma-separated architectures, e.g. 75 or compute_75 (fa1), 80 or 90 (fa2)")
    u.add_argument("--head-dims", help="comma-separated head dims to build kernels for (default: all), e.g. 64")
    u.add_argument("--source", help="the source archive or unpacked folder (default: download it from PyPI)")
    u.add_argument("--cache", default="runs/wheels", help="the wheel cache (a folder per torch/CUDA/Python)")
    u.add_argument("--work-dir", help="where to unpack and log (default build/flash-attn-1 or -2)")
    u.add_argument("--jobs", type=int, help="MAX_JOBS (default: from cores and RAM)")
    u.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    u.set_defaults(func=_build)

    s = sub.add_parser("smoke", help="a few tiny GPT-2 training steps with the auto backend")
    s.add_argument("--size", default="tiny")
    s.add_argument("--steps", type=int, default=3)
    s.set_defaults(func=_smoke)

    t = sub.add_parser("train", help="train GPT-2 on Wikisource with Lightning")
    t.add_argument("--config", help="YAML file of training parameters (configs/, notebooks/params/)")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override parameters, e.g. --set max_steps=10")
    t.set_defaults(func=_train)

    k = sub.add_parser("tokens", help="tokens per word: GPT-2's BPE against a BPE trained on the text")
    k.add_argument("--lang", default="vi")
    k.add_argument("--vocab-size", type=int, default=4096)
    k.add_argument("--seed", type=int, default=1234)
    k.set_defaults(func=_tokens)

    b = sub.add_parser("bench", help="benchmarks: attention kernels, GPT-2 training, Lightning overhead")
    b.add_argument("what", choices=["attention", "train", "overhead", "impl"])
    b.add_argument("--out", help="write JSON (and CSV beside it) with the environment")
    b.add_argument("--backends", help="comma-separated backends (default: every one that runs here)")
    b.add_argument("--seq", default="512,1024,2048,4096,8192,16384", help="sequence lengths")
    b.add_argument("--head-dims", default="64,128")
    b.add_argument("--dtypes", default="bfloat16")
    b.add_argument("--tokens", type=int, default=16384, help="tokens per batch (batch = tokens / seq)")
    b.add_argument("--hidden", type=int, default=2048, help="attention: heads = hidden / head dim")
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--memory-seq", default="1024,2048,4096,8192,16384", help="attention: memory sweep lengths")
    b.add_argument("--size", default="124M", help="train: GPT-2 size")
    b.add_argument("--steps", type=int, default=15, help="train/overhead: timed steps")
    b.add_argument("--compile", action="store_true", help="train: torch.compile the model")
    b.add_argument("--config", help="overhead: training parameters (YAML)")
    b.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="overhead: override parameters")
    b.set_defaults(func=_bench)

    r = sub.add_parser("report", help="plots and Markdown tables from benchmark result files")
    r.add_argument("results", nargs="+")
    r.add_argument("--out", default="scr/img", help="folder for the PNGs and summary.md")
    r.set_defaults(func=_report)

    n = sub.add_parser("notebooks", help="execute the notebooks with papermill and a target's parameters")
    n.add_argument("--target", default="auto", choices=["auto", *targets.TARGETS])
    n.add_argument("--out", help="folder for the executed notebooks (default outputs/<target>)")
    n.add_argument("--sets", help="comma-separated sets, e.g. flash_attn_1 (default: the target's)")
    n.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override parameters, e.g. train.max_steps=50")
    n.add_argument("notebooks", nargs="*", help="run only these notebooks")
    n.set_defaults(func=_notebooks)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except VanillaFlashError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
