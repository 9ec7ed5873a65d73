"""tools/executed_pages.py: an executed notebook as a page of the site in each language (its prose, code,
the parameters it ran with and what it printed and drew), refused when its code is not the notebook's."""

import copy
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("executed_pages", ROOT / "tools" / "executed_pages.py")
executed_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(executed_pages)
REPO = "https://example.org/repo"


@pytest.fixture
def run(tmp_path):
    """notebook 03 of the flash-attn 1.x set with its stored (CPU) outputs, as papermill leaves a run: the
    parameters it ran with injected after the defaults, a start time, a warning on stderr."""
    nb = nbformat.read(ROOT / "notebooks/flash_attn_1/03_train_wikisource.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell('target = "t4"\nsolutions = True', metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, injected)
    code = next(c for c in nb.cells[at + 2 :] if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="loss 3.25\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: a warning\n")]  # fmt: skip
    nb.metadata["papermill"] = {"start_time": "2026-12-07T10:00:00+00:00"}
    folder = tmp_path / "results" / "h100" / "nb"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "03_train_wikisource.ipynb")
    return folder, nb


def test_a_run_becomes_a_page_in_each_language_with_its_code_outputs_and_parameters(run):
    folder, nb = run
    files = executed_pages.pages([("t4", "flash_attn_1", str(folder), ["03_train_wikisource"])], repo=REPO)
    en = files[executed_pages.DOCS / "en" / "ran" / "t4-03_train_wikisource.md"].decode()
    vi = files[executed_pages.DOCS / "vi" / "ran" / "t4-03_train_wikisource.md"].decode()
    assert en.startswith("# 03_train_wikisource, as it ran on an H100\n") and "on 2026-12-07" in en
    assert "`notebooks/params/t4.yaml`" in en and "this GPU stood in for one" in en
    for page in (en, vi):
        assert '```python\ntarget = "t4"\nsolutions = True\n```' in page  # what ran, not the defaults
        assert "```text\nloss 3.25\n```" in page and "a warning" not in page
        code = [c.source for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
        assert all(f"```python\n{source}\n```" in page for source in code)
    title = next(c.source for c in nb.cells if c.cell_type == "markdown").splitlines()[0]
    assert "\n#" + title + "\n" in en and title not in vi  # headings a level down; vi has its twin's prose
    assert "Không phải T4" in vi and "ngày 2026-12-07" in vi


def test_a_run_older_than_its_notebook_is_refused_by_name(run):
    folder, nb = run
    changed = copy.deepcopy(nb)
    cell = next(c for c in changed.cells[3:] if c.cell_type == "code")
    cell.source += "\nprint('changed since')"
    nbformat.write(changed, folder / "03_train_wikisource.ipynb")
    with pytest.raises(executed_pages.StaleRun, match="run it again"):
        executed_pages.pages([("t4", "flash_attn_1", str(folder), ["03_train_wikisource"])], repo=REPO)


def test_a_progress_bar_shows_as_a_terminal_leaves_it(run):
    """papermill keeps every flush of a bar as an output of its own; the page shows each line's last state,
    without the validation bars nested in the training bar or stderr."""
    folder, nb = run
    code = next(c for c in nb.cells if c.cell_type == "code" and c.outputs)
    flushes = ["\rEpoch 0:  50%|█| 1/2 [loss=4.0]", "\rEpoch 0: 100%|█| 2/2 [loss=3.0]", "\n",
               "\rValidation DataLoader 0: 100%|█| 2/2 [00:00<00:00]\x1b[A", "\n", "final: loss 3.0\n"]  # fmt: skip
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in flushes]
    code.outputs.insert(2, nbformat.v4.new_output("stream", name="stderr", text="GPU available: True\n"))
    nbformat.write(nb, folder / "03_train_wikisource.ipynb")
    files = executed_pages.pages([("t4", "flash_attn_1", str(folder), ["03_train_wikisource"])], repo=REPO)
    en = files[executed_pages.DOCS / "en" / "ran" / "t4-03_train_wikisource.md"].decode()
    assert "```text\nEpoch 0: 100%|█| 2/2 [loss=3.0]\nfinal: loss 3.0\n```" in en


def test_a_long_output_is_folded_and_keeps_its_last_lines(run):
    """A log longer than FOLD_LINES shows as a collapsed block the reader opens, with its last MAX_LINES lines."""
    folder, nb = run
    code = next(c for c in nb.cells if c.cell_type == "code" and c.outputs)
    n = executed_pages.MAX_LINES + 5
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"point {i}\n" for i in range(n)))]
    nbformat.write(nb, folder / "03_train_wikisource.ipynb")
    files = executed_pages.pages([("t4", "flash_attn_1", str(folder), ["03_train_wikisource"])], repo=REPO)
    folds = {"en": f'??? note "What it printed ({n} lines)"', "vi": f'??? note "Những gì ô in ra ({n} dòng)"'}
    for lang, fold in folds.items():
        page = files[executed_pages.DOCS / lang / "ran" / "t4-03_train_wikisource.md"].decode()
        block = page[page.index(fold) :]
        assert block.startswith(fold + "\n\n    ```text\n    … ") and f"\n    point {n - 1}\n    ```" in block
        assert "point 4\n" not in page and "point 5\n" in page  # the last MAX_LINES lines only


def test_the_site_pages_match_the_committed_runs():
    """docs/<lang>/ran/ is written by tools/executed_pages.py from the runs in RUNS; a page that no longer
    matches its run, or a run whose code is no longer the notebook's, fails here."""
    assert executed_pages.RUNS, "no executed runs on the site"
    for path, data in executed_pages.pages().items():
        assert path.exists() and path.read_bytes() == data, f"{path.relative_to(ROOT)}: run tools/executed_pages.py"


def test_every_page_of_a_run_is_in_the_sites_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for target, _, _, kinds in executed_pages.RUNS:
        for kind in kinds:
            assert f": ran/{target}-{kind}.md\n" in nav, f"ran/{target}-{kind}.md is not in mkdocs.yml's nav"
