"""The notebook collection: one parameters cell with the CPU values, bilingual prose, in sync with
their generator, valid parameter files, nbval that really compares, papermill that reports a
failing cell and keeps the executed notebook."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from vanilla_flash import notebook
from vanilla_flash.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/flash_attn_*/*.ipynb"))
PARAMS = sorted(ROOT.glob("notebooks/params/*.yaml"))


def test_three_sets_of_four():
    assert [p.parent.name for p in NOTEBOOKS].count("flash_attn_1") == 4
    assert {p.parent.name for p in NOTEBOOKS} == {"flash_attn_1", "flash_attn_2", "flash_attn_4"}
    assert {p.stem for p in NOTEBOOKS} == {"01_install", "02_build", "03_train_wikisource", "04_benchmark"}


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


def test_notebooks_match_their_generator(tmp_path):
    """The .ipynb files are written by notebooks/make_notebooks.py: editing one by hand is caught."""
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    for set_name, s in make_notebooks.SETS.items():
        for name, builder in make_notebooks.BUILDERS.items():
            expected = [c.source for c in builder(set_name, s)]
            stored = [c.source for c in nbformat.read(ROOT / "notebooks" / set_name / f"{name}.ipynb", 4).cells]
            assert stored == expected, f"{set_name}/{name}: run `make notebooks`"


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_parameter_files_are_valid_training_configs(path):
    values = yaml.safe_load(path.read_text())
    assert values["target"] == path.stem
    assert (ROOT / values["requirements"]).exists()
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


def test_target_follows_the_hardware():
    from conftest import A100, CPU, H100, T4

    assert [notebook.target_for(m) for m in (CPU, T4, A100, H100)] == ["cpu", "t4", "ampere", "hopper"]
