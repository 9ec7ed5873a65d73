"""The speed experiment (experiments/speed) on a CPU: its run's structure, and its tables and plot read
from the committed H200 files."""

import json
import math
from pathlib import Path

import pytest
import torch
from vanilla_flash.config import TrainConfig
from vanilla_flash.results import tables

from experiments.speed import run
from experiments.speed import tables as speed_tables

ROOT = Path(__file__).resolve().parents[2]


def test_speed_compares_each_variant_through_lightning_and_the_bare_loop(tmp_path):
    """The structure of the speed run (its figures are the H200's): a row per variant, both loops,
    their ratio, model TFLOP/s; a variant that cannot run is recorded and the others run; a plot."""
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                      bpe_vocab_size=512, seq_len=32, batch_size=4, log_every=2, progress_bar=False)  # fmt: skip
    variants = (("vanilla, chunked loss", {"model_impl": "vanilla", "loss": "chunked"}),
                ("a broken one", {"model_impl": "vanilla", "attn": "flash_attn_2"}),
                ("hf", {"model_impl": "hf"}),
                ("vanilla, bf16 weights", {"model_impl": "vanilla", "precision": "bf16-true"}))  # fmt: skip
    result = run.speed(cfg, variants, steps=3, warmup=2, plain_batches=(2,))
    ok, broken, hf, pure = result["rows"]
    assert pure["status"] == "ok" and ok["precision"] != "bf16-true" == pure["precision"]
    assert (ok["model_impl"], ok["loss"], hf["model_impl"]) == ("vanilla", "chunked", "hf")
    assert ok["status"] == hf["status"] == "ok" and broken["status"].startswith("error")
    for row in (ok, hf):
        assert row["lightning_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0 and row["model_tflops"] > 0
    assert result["matmul_tflops"] == {"before": None, "after": None} and "mfu_vs_matmul" not in ok  # no GPU here
    assert speed_tables.speed_plot(result, tmp_path / "speed.png").stat().st_size > 1000
    # its goal drawn as 1.05x the strongest plain row a claim is measured against, read from the run's claims
    strongest = speed_tables.speed_claims(result)[0]
    clipping = [r for r in result["plain_pytorch"] if r["status"] == "ok" and r["style"] == "gpt2" and r["grad_clip"]]
    assert strongest["plain_tokens_per_s"] == max(r["tokens_per_s"] for r in clipping)
    assert speed_tables.speed_plot(result, tmp_path / "goal.png", against_plain=True).stat().st_size > 1000
    # the plain-PyTorch baseline, with the run's sizes, with clipping and without, and the best Lightning
    # row against the one that clips as the run does; then nanoGPT's way of writing it, a reference row
    clipped, unclipped, nanogpt, *bf16_weights = result["plain_pytorch"]
    assert (clipped["grad_clip"], unclipped["grad_clip"], nanogpt["grad_clip"]) == (True, False, False)
    assert cfg.grad_clip == 1.0
    assert (clipped["style"], unclipped["style"], nanogpt["style"]) == ("gpt2", "gpt2", "nanogpt")
    assert clipped["bias"] and not nanogpt["bias"] and nanogpt["gelu"] == "exact"
    for plain in (clipped, unclipped, nanogpt):
        assert plain["status"] == "ok" and plain["tokens_per_s"] > 0 and (plain["batch"], plain["seq"]) == (2, 32)
        assert plain["sdpa_kernel"] is None and plain["compile_mode"] == "default"  # cfg.attn auto: PyTorch's pick
    best = max((ok, hf), key=lambda r: r["lightning_tokens_per_s"])
    assert result["best_over_plain"]["best"] == best["name"] and result["best_over_plain"]["grad_clip"] is True
    assert result["best_over_plain"]["ratio"] == pytest.approx(
        best["lightning_tokens_per_s"] / clipped["tokens_per_s"], rel=1e-3
    )
    assert result["best_over_plain"]["over_nanogpt_style"] == pytest.approx(
        best["lightning_tokens_per_s"] / nanogpt["tokens_per_s"], rel=1e-3
    )
    # the same three plain rows with the weights in bf16, which a bf16-true variant is claimed against alone
    assert [(r["grad_clip"], r["style"], r["weights"]) for r in bf16_weights] == [
        (True, "gpt2", "bfloat16"), (False, "gpt2", "bfloat16"), (False, "nanogpt", "bfloat16")]  # fmt: skip
    assert all(r["status"] == "ok" for r in bf16_weights) and clipped["weights"] == "float32"
    pure_claim = result["best_over_plain_bf16_weights"]
    assert pure_claim["best"] == pure["name"] and pure_claim["ratio"] == pytest.approx(
        pure["lightning_tokens_per_s"] / bf16_weights[0]["tokens_per_s"], rel=1e-3
    )


def test_each_plain_way_runs_at_each_batch_up_to_the_first_that_fails(monkeypatch):
    """Where batch 192 runs out of memory with float32 weights but not with bf16 ones (as an 80 GB card may),
    each way of writing the plain GPT-2 is measured at its own best batch, stopping at the first that fails."""

    def loop(batch, seq, clip, vocab, steps, warmup, layers, heads, width, kernel, mode, style):
        if batch > 128 and style.weights == "float32":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return {"tokens_per_s": float(batch)}

    monkeypatch.setattr(run, "plain_pytorch_loop", loop)
    rows = run._plain_baseline(TrainConfig(), (192, 64, 128), steps=1, warmup=0, log=lambda line: None)
    ran = [(r["style"], r["weights"], r["batch"], r["grad_clip"], r["status"]) for r in rows]
    assert ran == [
        *(("gpt2", "float32", b, clip, "ok") for b in (64, 128) for clip in (True, False)),
        ("gpt2", "float32", 192, True, "OOM"),  # the unclipped row at 192 is not tried
        *(("nanogpt", "float32", b, False, "ok" if b < 192 else "OOM") for b in (64, 128, 192)),
        *(("gpt2", "bfloat16", b, clip, "ok") for b in (64, 128, 192) for clip in (True, False)),
        *(("nanogpt", "bfloat16", b, False, "ok") for b in (64, 128, 192)),
    ]


def test_each_claim_is_against_the_fastest_plain_row_of_its_kind_and_the_fastest_nanogpt_row():
    ours = [{"name": "mixed", "precision": "bf16-mixed", "lightning_tokens_per_s": 110.0},
            {"name": "pure", "precision": "bf16-true", "lightning_tokens_per_s": 120.0},
            {"name": "pure, larger batch", "precision": "bf16-true", "lightning_tokens_per_s": 126.0}]  # fmt: skip

    def plain(style, weights, batch, clip, tokens):
        return {"style": style, "weights": weights, "batch": batch, "grad_clip": clip, "tokens_per_s": tokens,
                "status": "ok"}  # fmt: skip

    theirs = [plain("gpt2", "float32", 128, True, 100.0), plain("gpt2", "float32", 128, False, 101.0),
              plain("gpt2", "bfloat16", 128, True, 104.0), plain("gpt2", "bfloat16", 192, True, 105.0),
              plain("gpt2", "bfloat16", 192, False, 106.0),  # clips otherwise: not the claim's
              plain("nanogpt", "bfloat16", 128, False, 107.0), plain("nanogpt", "bfloat16", 192, False, 108.0),
              {**plain("gpt2", "bfloat16", 256, True, 0.0), "status": "OOM"}]  # fmt: skip
    mixed = run._best_over_plain(ours, theirs, clip=True, weights="float32")
    assert mixed == {"best": "mixed", "plain_batch": 128, "grad_clip": True, "ratio": 1.1}
    pure = run._best_over_plain(ours, theirs, clip=True, weights="bfloat16")
    assert pure["best"] == "pure, larger batch" and pure["plain_batch"] == 192 and pure["ratio"] == 1.2
    assert pure["over_nanogpt_style"] == round(126 / 108, 4)  # the faster of its two batches


def test_the_command_line_picks_variants_and_plain_ways_by_position(monkeypatch, tmp_path):
    """`--variants 1,2`, `--variants=` (none: the plain baseline alone), `--plain-styles 2` and `--plain-styles=`
    (none: the variants alone), for a run with little device time left; without them, all of each."""
    calls = []
    monkeypatch.setattr(run, "speed", lambda cfg, **kwargs: calls.append(kwargs) or {"rows": []})
    monkeypatch.setattr(run.tables, "speed_plot", lambda result, path, **_: path)
    base = ["--config", str(ROOT / "configs" / "h200-speed.yaml"), "--out", str(tmp_path / "speed.json")]
    run.main(base)
    run.main([*base, "--variants", "1,2", "--plain-styles", "2"])
    run.main([*base, "--variants="])
    run.main([*base, "--plain-styles="])
    everything, some, plain_only, variants_only = calls
    assert everything["variants"] == run.SPEED_VARIANTS and everything["plain_styles"] == run.PLAIN_STYLES
    assert some["variants"] == run.SPEED_VARIANTS[1:3] and some["plain_styles"] == (run.PLAIN_STYLES[2],)
    assert plain_only["variants"] == () and plain_only["plain_batches"] == (128, 192)
    assert variants_only["plain_styles"] == () and variants_only["variants"] == run.SPEED_VARIANTS


def test_the_speed_table_is_read_from_the_committed_h200_run_and_leaves_out_what_measured_nothing(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed.json"
    result = json.loads(path.read_text())
    valid = [r for r in result["rows"] if r["status"] == "ok" and "note" not in r]
    plain = [r for r in result["plain_pytorch"] if r["status"] == "ok"]
    assert valid and plain
    best = max(valid, key=lambda r: r["lightning_tokens_per_s"])
    for lang, point in (("en", "."), ("vi", ",")):
        table = speed_tables.speed_markdown(path, lang)
        lines = table.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1
        rows = lines[first : first + len(valid) + len(plain)]
        for line, r in zip(rows[: len(valid)], valid, strict=True):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0] == speed_tables.speed_label(r, lang)
            assert cells[1] == f"{r['lightning_tokens_per_s'] / 1e3:.1f}k".replace(".", point)
            assert cells[2] == f"{r['bare_tokens_per_s'] / 1e3:.1f}k".replace(".", point)
            assert cells[3] == f"{r['lightning_over_bare']:.3f}".replace(".", point)
        for line, r in zip(rows[len(valid) :], plain, strict=True):  # the plain-PyTorch GPT-2: its own loop only
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert f"batch {r['batch']}" in cells[0] and cells[1] == "-"
            assert cells[2] == f"{r['tokens_per_s'] / 1e3:.1f}k".replace(".", point)
        # then the verdict: the best row against the plain model (the file's ratio) and against the goal
        verdict = lines[first + len(valid) + len(plain) + 1]
        assert speed_tables.speed_label(best, lang) in verdict
        assert f"{result['best_over_plain']['ratio']:.3f}×".replace(".", point) in verdict
        assert f"{best['lightning_tokens_per_s'] / speed_tables.SPEED_GOAL:.3f}".replace(".", point) in verdict
        goal = f"{speed_tables.SPEED_GOAL / 1e3:.0f}k"
        assert result["environment"]["machine"]["gpu_name"] in table and goal in table
    # the row names in Vietnamese, part by part; a part it does not know stays as it is
    row = {"name": "vanilla, chunked loss with Triton kernel, batch 192, bf16 residual, float8 rowwise", "batch": 192}
    assert speed_tables.speed_label(row, "vi") == (
        "vanilla, loss tính theo đoạn bằng kernel Triton, batch 192, luồng residual bf16, float8 rowwise"
    )
    assert speed_tables.speed_label({"name": "hf", "batch": 32}, "en") == "hf, batch 32"
    # the plain rows name their clipping and kernel; the verdict, the plain row it was measured against
    clipped = dict(plain[0], grad_clip=True, sdpa_kernel="CUDNN_ATTENTION", batch=128)
    unclipped = dict(plain[0], grad_clip=False, sdpa_kernel="CUDNN_ATTENTION", batch=192)
    both = dict(result, plain_pytorch=[clipped, unclipped],
                best_over_plain=dict(result["best_over_plain"], plain_batch=128, grad_clip=True))  # fmt: skip
    (tmp_path / "both.json").write_text(json.dumps(both))
    table = speed_tables.speed_markdown(tmp_path / "both.json")
    assert "batch 128, clipping at 1.0 (its own loop" in table and "; SDPA's CUDNN_ATTENTION kernel" in table
    assert "batch 192, no clipping" in table and "that clips as it does (batch 128, clipping at 1.0)" in table
    assert "batch 192, không cắt gradient" in speed_tables.speed_markdown(tmp_path / "both.json", "vi")
    # a row annotated afterwards as not a measurement (a run that fell back to eager), and one that failed
    annotated = dict(valid[0], name="ran uncompiled", note="not a measurement: dynamo gave up compiling")
    failed = {**valid[0], "name": "ran out of memory", "status": "OOM"}
    changed = dict(result, rows=[dict(valid[0], lightning_tokens_per_s=123456.0), annotated, failed])
    (tmp_path / "speed.json").write_text(json.dumps(changed))
    table = speed_tables.speed_markdown(tmp_path / "speed.json")
    assert "123.5k" in table and "ran uncompiled" not in table and "ran out of memory" not in table
    assert speed_tables.speed_plot(changed, tmp_path / "speed.png").stat().st_size > 1000


def test_the_plain_pytorch_table_is_read_from_the_committed_h200_profile(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "plain_pytorch_profile.json"
    result = json.loads(path.read_text())
    measured = [r for r in result["plain_pytorch"] if r["status"] == "ok"]
    assert measured
    for lang, yes in (("en", "yes"), ("vi", "có")):
        lines = speed_tables.plain_pytorch_markdown(path, lang).splitlines()
        rows = lines[next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1 :]
        assert len(rows) == len(measured)
        for line, r in zip(rows, measured, strict=True):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0] == str(r["batch"]) and cells[2] == str(r["vocab"])
            assert cells[3] == f"{r['tokens_per_s'] / 1e3:.1f}k" and (cells[1] == yes) == r["grad_clip"]
    changed = dict(result, plain_pytorch=[dict(measured[0], tokens_per_s=654321.0), {"status": "error: OOM"}])
    (tmp_path / "profile.json").write_text(json.dumps(changed))
    assert "654.3k" in speed_tables.plain_pytorch_markdown(tmp_path / "profile.json")


def test_the_loss_kernel_table_gives_each_forms_fastest_setting_from_the_committed_file(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "loss_kernel.json"
    result = json.loads(path.read_text())
    timed = [r for r in result["kernel"] if "ms" in r]
    forms = {r["form"] for r in timed}
    for lang, point in (("en", "."), ("vi", ",")):
        lines = speed_tables.loss_kernel_markdown(path, lang).splitlines()
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[lines.index(next(
            line for line in lines if line.startswith("|---"))) + 1 :]]  # fmt: skip
        assert len(rows) == 1 + len(forms) + 1  # torch.compile's, each form's fastest, the module's setting then
        assert rows[0][4] == tables.number(result["torch_compiled"]["ms"], lang)
        for form in forms:
            fastest = min((r for r in timed if r["form"] == form), key=lambda r: r["ms"])
            row = next(cells for cells in rows if f"`{form}`" in cells[0])
            assert row[1:5] == [str(fastest["block"]) if fastest["block"] else "-", str(fastest["warps"]),
                                str(fastest["programs_per_sm"]), tables.number(fastest["ms"], lang)]  # fmt: skip
            assert row[5] == tables.number(fastest["ms"] / result["torch_compiled"]["ms"], lang)
        assert f"{len(timed)} " in lines[0] and result["commit"][:7] in lines[0] and point in rows[0][4]
    faster = dict(result, kernel=[dict(timed[0], ms=0.123)])
    (tmp_path / "loss_kernel.json").write_text(json.dumps(faster))
    assert "| 0.123 |" in speed_tables.loss_kernel_markdown(tmp_path / "loss_kernel.json")


def test_the_step_profile_table_gives_the_gpu_time_and_each_variant_against_the_step_profiled(tmp_path):
    import json

    path = ROOT / "results" / "h200" / "speed" / "best_profile.json"
    result = json.loads(path.read_text())
    measured = [v for v in result["variants"] if v["status"] == "ok"]
    lines = speed_tables.step_profile_markdown(path).splitlines()
    assert f"{tables.number(result['profile']['gpu_ms_per_step'], 'en', 4)} ms of GPU time" in lines[0]
    for group, ms in result["profile"]["groups_ms_per_step"].items():
        assert tables.number(ms, "en") + " ms" in lines[0], group
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert [r[0] for r in rows] == [v["name"] for v in measured]
    for cells, v in zip(rows, measured, strict=True):
        assert cells[2] == f"{v['tokens_per_s'] / 1e3:.1f}k"
        assert cells[3] == f"{v['tokens_per_s'] / measured[0]['tokens_per_s']:.3f}"
    assert "trong đó nhân ma trận" in speed_tables.step_profile_markdown(path, "vi")
    failed = dict(result, variants=[*result["variants"], {"name": "batch 256", "status": "OOM"}])
    (tmp_path / "profile.json").write_text(json.dumps(failed))
    assert "batch 256" not in speed_tables.step_profile_markdown(tmp_path / "profile.json")


def test_the_plain_gpt_written_otherwise_differs_only_where_it_says():
    """`Style` (the probe of what separates the baseline from a nanoGPT-like GPT-2): without biases it is GPT-2
    less every bias; the exact GELU and the logits left to autocast change the loss only slightly."""
    from experiments.speed.plain_gpt import PlainGPT, Style

    def model(style):
        torch.manual_seed(0)
        return PlainGPT(layers=2, heads=2, width=32, vocab=64, seq=16, style=style)

    names = {n for n, _ in model(Style()).named_parameters()}
    without = {n for n, _ in model(Style(bias=False)).named_parameters()}
    assert without == {n for n in names if not n.endswith(".bias")} and len(names) - len(without) == 2 * 6 + 1
    ids = torch.randint(0, 64, (2, 16))
    base = model(Style())(ids, ids)
    for style in (Style(gelu="exact"), Style(float_logits=False)):
        assert model(style)(ids, ids).item() == pytest.approx(base.item(), abs=1e-3)
    assert torch.isfinite(model(Style(bias=False))(ids, ids))
    # the loop: the weights held in bfloat16 train, and where a step's time goes is listed when asked
    from experiments.speed.plain_gpt import plain_pytorch_loop

    sizes = dict(seq=16, vocab=64, steps=1, warmup=1, layers=2, heads=2, width=32)
    pure = plain_pytorch_loop(2, clip=False, style=Style(weights="bfloat16"), **sizes)
    assert pure["tokens_per_s"] > 0 and math.isfinite(pure["loss"]) and "top_kernels" not in pure
    torch._dynamo.reset()
    profiled = plain_pytorch_loop(2, clip=True, profile_steps=2, **sizes)
    times = [k["ms_per_step"] for k in profiled["top_kernels"]]
    assert 0 < len(times) <= 15 and times == sorted(times, reverse=True) and times[-1] > 0


def test_the_probe_table_reads_each_variant_from_the_committed_file_in_both_languages():
    from experiments.speed import probe_tables

    path = ROOT / "results/h200/speed/probe-run/plain_probe.json"
    rows = json.loads(path.read_text())["rows"]
    for lang in ("en", "vi"):
        table = probe_tables.plain_probe_markdown(path, lang)
        body = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
        assert len(body) == len(rows)
        for line, row in zip(body, rows, strict=True):
            assert speed_tables.thousands(row["tokens_per_s"], lang) in line
            assert (row["variant"] in line) == (lang == "en")  # every variant has its Vietnamese name
        assert "| 1.000 |" in body[0] if lang == "en" else "| 1,000 |" in body[0]
