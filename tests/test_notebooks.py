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

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/flash_attn_*/*.ipynb"))
PARAMS = sorted(ROOT.glob("notebooks/params/*.yaml"))


def test_three_sets_of_five():
    assert [p.parent.name for p in NOTEBOOKS].count("flash_attn_1") == 5
    assert {p.parent.name for p in NOTEBOOKS} == {"flash_attn_1", "flash_attn_2", "flash_attn_4"}
    kinds = {"01_install", "02_build", "03_train_wikisource", "04_benchmark", "05_from_scratch"}
    assert {p.stem for p in NOTEBOOKS} == kinds


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_notebook_opens_bilingual_with_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "Open in Colab" in first.source and "GPU dự kiến" in first.source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    cpu = yaml.safe_load((ROOT / "notebooks/params/cpu.yaml").read_text())
    defaults = {}
    exec(tagged[0].source, {}, defaults)  # the cell is plain assignments
    assert defaults == cpu
    prose = [c for c in nb.cells[1:] if c.cell_type == "markdown"]
    assert all("Tiếng Việt" in c.source for c in prose)
    assert not any(
        c.get("outputs") and c.outputs[0].get("output_type") == "error" for c in nb.cells if c.cell_type == "code"
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
        expected = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in build.notebook(set_name, kind).cells]
        stored = nbformat.read(ROOT / "notebooks" / set_name / f"{kind}.ipynb", 4).cells
        assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in stored] == expected, (
            f"{set_name}/{kind}: edit notebooks/source/{kind}.py, then run `make notebooks`"
        )


def _headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if re.match(r"#{1,6} ", line)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_vietnamese_headings_start_a_line(path):
    """Each prose cell is English, then `*Tiếng Việt*` on its own line, then the Vietnamese text with as many
    headings, each at the start of a line (a heading glued to the label would render as a paragraph)."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        english, sep, vietnamese = cell.source.partition("\n\n---\n\n*Tiếng Việt*\n\n")
        assert sep and sep not in vietnamese, cell.source
        assert not re.search(r"Tiếng Việt\S*[ \t]+#", cell.source), cell.source
        assert len(_headings(vietnamese)) == len(_headings(english)), cell.source


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
    """Through a GitHub-flavoured Markdown renderer, as Colab and GitHub show the cells: as many
    headings in the Vietnamese half of a cell as in the English half."""
    from markdown_it import MarkdownIt

    gfm = MarkdownIt("commonmark").enable("table")
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown" or "Tiếng Việt" not in cell.source:
            continue
        english, vietnamese = cell.source.split("*Tiếng Việt*", 1)
        count = [len(re.findall(r"<h[1-6]>", gfm.render(half))) for half in (english, vietnamese)]
        assert count[0] == count[1], f"{path.name}: {count[0]} English and {count[1]} Vietnamese headings"
        assert not re.search(r"<p>[^<]*#", gfm.render(vietnamese)), f"a '#' rendered as text in {path.name}"


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
