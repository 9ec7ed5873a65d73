"""The notebook collection: one parameters cell with the CPU values, bilingual prose, in sync with
their sources (notebooks/source/, built by notebooks/build.py), valid parameter files, nbval that
really compares, papermill that reports a failing cell and keeps the executed notebook."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from vanilla_flash import notebook
from vanilla_flash.config import TrainConfig
from vanilla_flash.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/flash_attn_*/*.ipynb"))  # English
TWINS = [path.parent / "vi" / path.name for path in NOTEBOOKS]  # their Vietnamese twins
PARAMS = sorted(ROOT.glob("notebooks/params/*.yaml"))


def test_three_sets_of_five():
    assert [p.parent.name for p in NOTEBOOKS].count("flash_attn_1") == 5
    assert {p.parent.name for p in NOTEBOOKS} == {"flash_attn_1", "flash_attn_2", "flash_attn_4"}
    kinds = {"01_install", "02_build", "03_train_wikisource", "04_benchmark", "05_from_scratch"}
    assert {p.stem for p in NOTEBOOKS} == kinds


VIETNAMESE_LETTERS = re.compile("[ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ]", re.I)


@pytest.mark.parametrize("path", NOTEBOOKS + TWINS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_each_notebook_opens_in_one_language_with_one_parameters_cell(path):
    vietnamese = path.parent.name == "vi"
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    badge, other, gpu = ("Mở trên Colab", "[English]", "GPU dự kiến") if vietnamese else (
        "Open in Colab", "[Tiếng Việt]", "Expected GPU")  # fmt: skip
    assert first.cell_type == "markdown" and first.source.startswith("# flash-attn ")
    assert badge in first.source and other in first.source and gpu in first.source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    cpu = yaml.safe_load((ROOT / "notebooks/params/cpu.yaml").read_text())
    defaults = {}
    exec(tagged[0].source, {}, defaults)  # the cell is plain assignments
    assert defaults == cpu
    for cell in nb.cells:
        if (
            cell.cell_type == "markdown"
        ):  # one language only: Vietnamese letters in every cell of one, none in the other
            text = cell.source.replace("[Tiếng Việt]", "")  # the English notebook's link to its twin
            assert bool(VIETNAMESE_LETTERS.search(text)) == vietnamese, cell.source[:200]
    assert not any(
        c.get("outputs") and c.outputs[0].get("output_type") == "error" for c in nb.cells if c.cell_type == "code"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_vietnamese_twin_has_the_english_code_and_its_outputs(path):
    english, twin = (nbformat.read(p, as_version=4) for p in (path, path.parent / "vi" / path.name))
    assert [c.cell_type for c in english.cells] == [c.cell_type for c in twin.cells]
    for a, b in zip(english.cells, twin.cells, strict=True):
        if a.cell_type == "code":
            assert (a.source, a.outputs, a.metadata.get("tags")) == (b.source, b.outputs, b.metadata.get("tags")), (
                f"{path.name}: run `make notebooks` (its last step copies the outputs into vi/)"
            )


def _build():
    """notebooks/build.py, loaded from its path (`import build` could find PyPA's `build` package)."""
    spec = importlib.util.spec_from_file_location("notebooks_build", ROOT / "notebooks" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_match_their_sources():
    """The .ipynb files are written by notebooks/build.py from notebooks/source/: editing one by hand is caught."""
    build = _build()
    built = [(set_name, kind) for set_name in build.targets.notebook_sets() for kind in build.KINDS]
    assert sorted(f"{s}/{k}" for s, k in built) == [f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS]
    for set_name, kind in built:
        for lang in build.LANGS:
            cells = build.notebook(set_name, kind, lang).cells
            expected = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in cells]
            stored = nbformat.read(ROOT / build.relative_path(set_name, kind, lang), 4).cells
            assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in stored] == expected, (
                f"{set_name}/{kind} ({lang}): edit notebooks/source/{kind}.py, then run `make notebooks`"
            )


def _headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if re.match(r"#{1,6} ", line)]


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_parameter_files_are_valid_training_configs(path):
    values = yaml.safe_load(path.read_text())
    assert values["target"] == path.stem
    cfg = TrainConfig.from_yaml(path)  # the same file drives `python -m vanilla_flash train --config`
    assert cfg.model_size in ("tiny", "124M", "355M")
    assert set(values["benchmark"]) >= {"seq_lens", "head_dims", "dtypes", "tokens", "hidden"}


def _nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", str(path)], capture_output=True, text=True, cwd=path.parent,
                          timeout=600)  # fmt: skip


def test_nbval_fails_when_a_stable_output_changes(tmp_path):
    original = ROOT / "notebooks/flash_attn_1/02_build.ipynb"
    nb = nbformat.read(original, as_version=4)
    nbformat.write(nb, tmp_path / "unchanged.ipynb")
    stable = [c for c in nb.cells if c.cell_type == "code" and c.outputs and not c.metadata.get("tags")]
    stable[-1].outputs[0]["text"] = "a different explanation\n"
    nbformat.write(nb, tmp_path / "changed.ipynb")
    assert _nbval(tmp_path / "unchanged.ipynb").returncode == 0
    changed = _nbval(tmp_path / "changed.ipynb")
    assert changed.returncode != 0
    assert "a different explanation" in changed.stdout


def test_a_failing_cell_fails_the_run_and_keeps_the_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("target = 'cpu'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('before')"),
        nbformat.v4.new_code_cell("raise ValueError('this cell fails')"),
        nbformat.v4.new_code_cell("print('never')"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "broken.ipynb"
    nbformat.write(nb, src)
    results = notebook.run("cpu", out_dir=tmp_path / "out", notebooks=[src], overrides={"train.max_steps": 7})
    ((executed, error),) = results
    assert error and "this cell fails" in error
    kept = json.loads(executed.read_text())
    outputs = [o for c in kept["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ValueError" for o in outputs)
    injected = next(c for c in kept["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert '"max_steps": 7' in "".join(injected["source"])  # a dotted override reached the notebook
    cli = subprocess.run([sys.executable, "-m", "vanilla_flash", "notebooks", "--target", "cpu", "--out",
                          str(tmp_path / "cli"), str(src)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert cli.returncode == 1 and "FAILED" in cli.stdout
    assert (tmp_path / "cli" / tmp_path.name / "broken.ipynb").exists()


def test_each_target_runs_its_own_set_and_the_cpu_runs_every_set():
    from vanilla_flash import targets

    assert targets.sets_to_run(targets.T4) == ["flash_attn_1"]
    assert targets.sets_to_run(targets.CPU) == targets.notebook_sets() == [p.name for p in sorted(
        (ROOT / "notebooks").glob("flash_attn_*"))]  # fmt: skip
    for t in targets.TARGETS.values():
        assert (ROOT / t.params).exists() and (ROOT / t.requirements).exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_heading_renders_as_a_heading_in_both_languages(path):
    """Through a GitHub-flavoured Markdown renderer, as Colab and GitHub show the cells: each prose cell has as
    many headings in the Vietnamese notebook as in the English one, and no '#' left as text."""
    from markdown_it import MarkdownIt

    gfm = MarkdownIt("commonmark").enable("table")
    english, twin = (nbformat.read(p, as_version=4) for p in (path, path.parent / "vi" / path.name))
    for a, b in zip(english.cells, twin.cells, strict=True):
        if a.cell_type != "markdown":
            continue
        count = [len(re.findall(r"<h[1-6]>", gfm.render(cell.source))) for cell in (a, b)]
        assert count[0] == count[1], f"{path.name}: {count[0]} English and {count[1]} Vietnamese headings"
        assert not re.search(r"<p>[^<]*#", gfm.render(b.source)), f"a '#' rendered as text in vi/{path.name}"


NOISE = {
    "Kernel is running over TCP": "papermill's kernel over TCP (run() uses IPC)",
    "IProgress not found": "tqdm without ipywidgets",
    "loss_type=None": "transformers not told GPT-2's loss",
    "💡 Tip": "Lightning's advertisement",
    "exists and is not empty": "Lightning on the tokenizer.json beside the checkpoints",
    "is deprecated": "a deprecation inside a library",
    "\ufffd": "a sample cut inside a UTF-8 character",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_outputs_carry_no_noise(path):
    text = json.dumps(nbformat.read(path, as_version=4).cells, ensure_ascii=False)
    found = [why for noise, why in NOISE.items() if noise in text]
    assert not found, f"{path.name}: {found}"


def _repository_of_this_tree(dest: Path) -> Path:
    """A git repository holding this working tree as it is now (committed or not), to clone from."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the tree under test"]):
        subprocess.run([*git, *step], cwd=dest, check=True, capture_output=True)
    return dest


def test_the_colab_setup_cell_makes_the_library_importable_in_its_own_kernel(tmp_path):
    """The Colab set-up cells as Colab runs them, in one fresh process, no restart: clone the
    repository (here from this checkout), install the set's requirements (already satisfied here;
    pip may not reach an index), import the library from the clone, pick the parameters. Colab
    itself is reproduced by `make colab-twin`; this is its cheap check."""
    nb = nbformat.read(ROOT / "notebooks/flash_attn_1/01_install.ipynb", as_version=4)
    parameters, bootstrap, enter = (c.source for c in nb.cells[1:4])
    assert "parameters" in nb.cells[1].metadata["tags"] and "COLAB_RELEASE_TAG" in bootstrap
    clone = tmp_path / "vanilla-flash"
    repo = _repository_of_this_tree(tmp_path / "origin")
    program = "\n".join([parameters, bootstrap, enter, "import vanilla_flash", "print(vanilla_flash.__file__)"])
    env = {**os.environ, "COLAB_RELEASE_TAG": "release-colab-twin", "VANILLA_FLASH_REPO": f"file://{repo}",
           "PIP_NO_INDEX": "1", "COLAB_DRIVE_MOUNT": str(tmp_path / "drive")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith(str(clone / "scr")), done.stdout
    assert "No GPU in this Colab runtime" in done.stdout and "target: cpu" in done.stdout


# Parameters enter a notebook three ways (papermill's -p/-y, `python -m vanilla_flash notebooks --set`,
# Colab's own file): each goes through `notebook.checked_params`, by the rules of the training config.
TRAIN_NB = ROOT / "notebooks/flash_attn_1/03_train_wikisource.ipynb"


def _papermill(src: Path, dst: Path, parameters: dict):
    """Execute `src` as `papermill src dst -y PARAMETERS` would; the executed notebook and the error, if any."""
    import papermill

    options = {"kernel_name": "python3", "cwd": str(ROOT), "progress_bar": False, "config": notebook._local_kernel()}
    try:
        papermill.execute_notebook(str(src), str(dst), parameters=parameters, **options)
        error = None
    except papermill.PapermillExecutionError as err:
        error = err
    return nbformat.read(dst, as_version=4), error


def _training_words(**changes) -> str:
    """What the training config says of the cpu file's `train` section with `changes`."""
    with pytest.raises(ConfigError) as refused:
        TrainConfig.from_dict({**notebook.params("cpu")["train"], **changes})
    return str(refused.value)


def test_papermill_refuses_a_training_value_of_the_wrong_type_by_name_before_any_work(tmp_path):
    """`papermill 03_train_wikisource.ipynb out.ipynb -y "train: {max_steps: ten}"`: the set-up cell
    refuses it in the training config's words, and no cell after it runs (it once ended in KeyError: 'lang')."""
    executed, error = _papermill(TRAIN_NB, tmp_path / "out.ipynb", {"train": {"max_steps": "ten"}})
    assert error is not None and error.ename == "ConfigError", error
    assert error.evalue == _training_words(max_steps="ten")
    assert "max_steps: 'ten' is not a whole number" in error.evalue
    code = [c for c in executed.cells if c.cell_type == "code"]
    failed = next(i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.outputs))
    assert "notebook.enter_repo()" in code[failed].source  # the set-up cell, before any work
    assert all(c.execution_count is None for c in code[failed + 1 :])


def _setup_only(tmp_path: Path, probe: str) -> Path:
    """Notebook 03's parameters and set-up cells, then `probe`: what the notebook's cells would see."""
    nb = nbformat.read(TRAIN_NB, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if "notebook.enter_repo()" in c.source)
    nb.cells = [*nb.cells[: setup + 1], nbformat.v4.new_code_cell(probe)]
    path = tmp_path / "setup.ipynb"
    nbformat.write(nb, path)
    return path


def test_papermill_merges_a_partial_train_section_over_the_targets_file_and_says_so(tmp_path):
    probe = "import json\nprint('PARAMS', json.dumps({'train': train, 'benchmark': benchmark}))"
    executed, error = _papermill(
        _setup_only(tmp_path, probe), tmp_path / "out.ipynb", {"train": {"max_steps": 3}, "benchmark": {"repeats": 2}}
    )
    assert error is None, error
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    seen = json.loads(text.split("PARAMS ", 1)[1].splitlines()[0])
    cpu = notebook.params("cpu")
    assert seen["train"] == {**cpu["train"], "max_steps": 3}
    assert seen["benchmark"] == {**cpu["benchmark"], "repeats": 2}
    assert "train: max_steps from the parameters, the other" in text and "notebooks/params/cpu.yaml" in text


def _one_cell_notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("target = 'cpu'", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print('ran')"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "one.ipynb")
    return tmp_path / "one.ipynb"


def test_the_notebooks_command_refuses_a_benchmark_value_of_the_wrong_type_before_any_notebook_runs(tmp_path, capsys):
    from vanilla_flash import cli

    out = tmp_path / "out"
    args = ["notebooks", "--target", "cpu", "--out", str(out), str(_one_cell_notebook(tmp_path))]
    assert cli.main([*args, "--set", "benchmark.repeats=abc"]) == 2
    err = capsys.readouterr().err
    assert "benchmark parameters that cannot be used" in err and "repeats: 'abc' is not a whole number" in err
    assert not out.exists()  # refused before any notebook ran
    with pytest.raises(ConfigError, match=r"seq_lens\[1\]: 'long' is not a whole number"):
        notebook.with_overrides(notebook.params("cpu"), {"benchmark.seq_lens": [64, "long"]}, "cpu")
    with pytest.raises(ConfigError) as refused:  # the training section: the same words as the training config
        notebook.with_overrides(notebook.params("cpu"), {"train.max_steps": "ten"}, "cpu")
    assert str(refused.value) == _training_words(max_steps="ten")


def test_checked_params_is_the_one_rule_for_every_section():
    cpu = notebook.params("cpu")
    assert notebook.checked_params(cpu) == cpu  # a whole, valid file comes back as it is
    assert notebook.checked_params(notebook.checked_params(cpu)) == cpu
    whole = notebook.checked_params({**cpu, "benchmark": {**cpu["benchmark"], "tokens": 512.0}})["benchmark"]
    assert whole["tokens"] == 512 and isinstance(whole["tokens"], int)  # 512.0 read as the whole number it is
    for raw, words in [
        ({**cpu, "gpu_memory_gib": "lots"}, "gpu_memory_gib: 'lots' is not a number or null"),
        ({**cpu, "fa1_archs": "75"}, "fa1_archs: '75' is not a list"),
        ({**cpu, "target": "tpu"}, "target: 'tpu' is not allowed; choose one of: cpu"),
        ({**cpu, "trian": {}}, "unknown notebook parameters: trian"),
        ({**cpu, "train": "fast"}, "train: 'fast' is not a mapping"),
        ({**cpu, "train": {"max_stpes": 3}}, "unknown training parameters: max_stpes"),
        ({**cpu, "benchmark": {"repeat": 3}}, "unknown benchmark parameters: repeat"),
        ({**cpu, "benchmark": {"dtypes": "float32"}}, "dtypes: 'float32' is not a list"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(words)):
            notebook.checked_params(raw)


def test_colab_parameters_are_checked_too(monkeypatch):
    cpu = notebook.params("cpu")
    bad = {**cpu, "benchmark": {**cpu["benchmark"], "repeats": "abc"}}
    monkeypatch.setattr(notebook, "params", lambda target: bad)
    with pytest.raises(ConfigError, match="repeats: 'abc' is not a whole number"):
        notebook.colab_params("t4")


def _cells_of_03(containing: str) -> list[str]:
    nb = nbformat.read(TRAIN_NB, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and containing in c.source]


def _run_cells(cells: list[str], namespace: dict) -> dict:
    for code in cells:
        exec(compile(code, "<notebook 03>", "exec"), namespace)
    return namespace


def test_notebook_03_uses_the_ckpt_dir_of_the_parameters_else_one_of_this_runs_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # notebook.storage writes under runs/ of the working folder
    cells = _cells_of_03("ckpt_dir")  # the cell that makes the run's config, not the one that trains
    cpu = notebook.params("cpu")["train"]
    given = _run_cells(cells, {"train": {**cpu, "ckpt_dir": str(tmp_path / "mine")}, "notebook": notebook})
    assert given["cfg"].checkpoints == tmp_path / "mine"
    own = _run_cells(cells, {"train": {**cpu, "run_dir": "runs/notebooks/lr-test"}, "notebook": notebook})
    assert own["cfg"].checkpoints == Path("runs/checkpoints/flash_attn_1/lr-test")
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)  # on Colab: the mounted Google Drive
    monkeypatch.setenv("COLAB_DRIVE_MOUNT", str(tmp_path / "drive"))
    monkeypatch.setattr(notebook.env, "in_colab", lambda: True)
    colab = _run_cells(cells, {"train": {**cpu, "run_dir": "runs/notebooks/lr-test"}, "notebook": notebook})
    assert colab["cfg"].checkpoints == tmp_path / "drive/MyDrive/vanilla-flash/checkpoints/flash_attn_1/lr-test"


def test_notebook_03_compares_tokenizers_in_the_runs_language_with_its_seed(monkeypatch):
    from vanilla_flash.training import data

    calls = []
    monkeypatch.setattr(data, "compare_tokenizers", lambda *a, **kw: calls.append((a, kw)) or {})
    train = {**notebook.params("cpu")["train"], "lang": "en", "seed": 7, "bpe_vocab_size": 2048}
    _run_cells(_cells_of_03("compare_tokenizers"), {"train": train, "notebook": notebook})
    ((args, kwargs),) = calls
    seen = dict(zip(("lang", "vocab_size", "seed"), args, strict=False)) | kwargs
    assert seen == {"lang": "en", "vocab_size": 2048, "seed": 7}


def test_notebook_03_prose_is_true_for_either_language():
    """The prose names the language through `train.lang`: never "Vietnamese Wikisource" next to an English run."""
    for path in sorted(ROOT.glob("notebooks/flash_attn_*/03_train_wikisource.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            english, _, vietnamese = cell.source.partition("*Tiếng Việt*")
            assert "Vietnamese Wikisource" not in english and "Wikisource tiếng Việt" not in vietnamese, cell.source
            assert "Vietnamese" not in english or "lang" in english, cell.source
            assert "tiếng Việt" not in vietnamese or "lang" in vietnamese, cell.source


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_each_parameter_file_declares_every_notebook_parameter_and_passes_the_check_unchanged(path):
    values = yaml.safe_load(path.read_text())
    assert tuple(values) == notebook.PARAMETERS  # the names of the parameters cell, declared once
    assert set(values["benchmark"]) == set(notebook.BenchmarkParams.__dataclass_fields__)
    assert notebook.checked_params(values) == values
