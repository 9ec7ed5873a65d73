"""Write the notebook collection from its sources, notebooks/source/<kind>.py.

    python notebooks/build.py              # (re)write notebooks/flash_attn_{1,2,4}/*.ipynb and vi/*.ipynb, no outputs
    python notebooks/build.py --strip F    # drop run-specific metadata from executed notebooks
    python notebooks/build.py --to-vi F    # copy an executed English notebook's outputs into its Vietnamese twin

Three sets (one per flash-attn version: flash_attn_1, flash_attn_2, flash_attn_4) of five kinds of
notebook (01_install ... 05_from_scratch), each in two languages: English in notebooks/<set>/, Vietnamese in
notebooks/<set>/vi/, the same code cells with the prose of one language. Each kind has one source, a
jupytext py:percent file read with jupytext's API: code cells are plain Python that ruff lints and
formats with the library, markdown cells are comments. Metadata in a cell's header says how the build
treats it:

    # %% [markdown]                         English prose ...
    # %% [markdown] lang="vi"               ... and the Vietnamese twin that must follow it: the English
                                            notebook takes the first, the Vietnamese one the second, so
                                            the two notebooks always hold the same cells
    # %% [markdown] sets=["flash_attn_1"]   a cell only in those sets (its twin goes with it)
    # %% tags=["nbval-ignore-output"]       cell tags, copied: nbval skips outputs that vary by run
    # %% preamble=true                      the parameters and set-up cells go here (see below)

For each set the build then fills in `$name` placeholders (string.Template, in every cell; `$$` is a
dollar sign) from the set's row of scr/vanilla_flash/targets.py ($version, $gpus, $gpus_vi,
$requirements, $target, $notebook_set, ...) and the badge and GPU lines of the first cell
($colab_badge: this notebook's Colab badge and a link to its twin in the other language,
$expected_gpu, $expected_gpu_vi); an unknown placeholder is an error. The sources
wrap markdown at 120 columns (ruff's line length); the build puts each paragraph back on one line: a
blank line, a heading, or a line starting a list item, quote, table row or code fence starts a new
line.

The parameters cell (the values of notebooks/params/cpu.yaml, which papermill replaces with another
target's file) and the two set-up cells (Colab bootstrap, enter the repository and check the parameters
with `notebook.checked_params`) are the same in every notebook, so they are written here rather than
in the sources. They define names the sources use
(`target`, `train`, `benchmark`, `fa1_*` and `fa2_*` build options, `notebook`). So that ruff
still reports every other undefined name, each source holds a `preamble=true` cell that defines these
names (as None) and that the build replaces; the build checks that it defines no name the cells it
stands for do not define, so the stand-in can never hide a real undefined name. The one per-file ignore
(pyproject.toml) is E402 for notebooks/source/: each cell imports what it uses, as notebook cells do.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import pprint
import re
import sys
import tomllib
from pathlib import Path
from string import Template

import jupytext
import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCES = HERE / "source"
sys.path.insert(0, str(ROOT / "scr"))
from vanilla_flash import targets  # noqa: E402  (this checkout's table, whichever Python runs the build)

REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
GITHUB_PATH = REPO_URL.removeprefix("https://github.com/")
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KINDS = sorted(p.stem for p in SOURCES.glob("*.py"))
CELL_KEYS = {"tags", "sets", "lang", "preamble"}  # the cell metadata a source may carry
LAYOUT_KEYS = {"lines_to_next_cell", "lines_to_end_of_cell_marker"}  # jupytext's record of blank lines
LANGS = ("en", "vi")  # English notebooks in notebooks/<set>/, Vietnamese ones in notebooks/<set>/vi/
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "accelerator": "GPU",
    "colab": {"provenance": []},
}

BOOTSTRAP = Template("""\
# On Colab: fetch the repository, install what the library needs next to Colab's own torch (never
# replacing it), and make the library importable in this kernel (an editable install would need a restart).
import os
import subprocess
import sys

REPO_URL = os.environ.get("VANILLA_FLASH_REPO", "$repo_url")
if "COLAB_RELEASE_TAG" in os.environ and not os.path.exists("pyproject.toml"):
    if not os.path.exists("vanilla-flash"):
        subprocess.run(["git", "clone", "--quiet", "--depth=1", REPO_URL, "vanilla-flash"], check=True)
    os.chdir("vanilla-flash")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "$requirements"], check=True)
if os.path.isdir("scr/vanilla_flash") and os.path.abspath("scr") not in sys.path:
    sys.path.insert(0, os.path.abspath("scr"))""")
ENTER_REPO = Template("""\
from vanilla_flash import notebook

root = notebook.enter_repo()  # work from the repository root, whatever started this notebook
if notebook.env.in_colab():  # opened in Colab (papermill does not run there): this set's GPU parameters
    globals().update(notebook.colab_params("$target"))
# Every parameter checked before any work, by the training config's rules (papermill's, Colab's or the cell's
# above); a partial `train` or `benchmark` section is completed from the target's file, with a line saying so.
globals().update(notebook.checked_params({name: globals()[name] for name in notebook.PARAMETERS}))
notebook.limit_gpu_memory(gpu_memory_gib)
print("target:", target)""")
EXPECTED_GPU = (
    "**Expected GPU:** $gpus. On a machine without it the notebook still runs (CPU parameters, dry runs), "
    "so every cell can be read and checked."
)
EXPECTED_GPU_VI = (
    "**GPU dự kiến:** $gpus_vi. Trên máy không có GPU đó, notebook vẫn chạy được (tham số CPU, chạy thử), "
    "nên mọi ô đều đọc và kiểm tra được."
)


def relative_path(set_name: str, kind: str, lang: str = "en") -> str:
    """Where the notebook lives in the repository: notebooks/<set>/<kind>.ipynb, the Vietnamese one in vi/."""
    return f"notebooks/{set_name}/{'vi/' if lang == 'vi' else ''}{kind}.ipynb"


def colab_url(set_name: str, kind: str, lang: str = "en") -> str:
    return f"https://colab.research.google.com/github/{GITHUB_PATH}/blob/main/{relative_path(set_name, kind, lang)}"


def placeholders(set_name: str, kind: str, lang: str = "en") -> dict[str, str]:
    t = targets.for_set(set_name)
    other = "vi" if lang == "en" else "en"
    label, other_label = ("Open in Colab", "Tiếng Việt") if lang == "en" else ("Mở trên Colab", "English")
    badge = f"[![{label}]({BADGE})]({colab_url(set_name, kind, lang)})"
    badge += f" · [{other_label}]({colab_url(set_name, kind, other)})"
    values = {"notebook_set": set_name, "target": t.name, "version": t.flash_attn, "gpus": t.gpus,
              "gpus_vi": t.gpus_vi, "requirements": t.requirements, "params": t.params, "backend": t.backend,
              "repo_url": REPO_URL, "colab_badge": badge}  # fmt: skip
    values["expected_gpu"] = Template(EXPECTED_GPU).substitute(values)
    values["expected_gpu_vi"] = Template(EXPECTED_GPU_VI).substitute(values)
    return values


def parameters_cell():
    values = yaml.safe_load((HERE / "params" / "cpu.yaml").read_text())
    lines = [
        "# Parameters: CPU-safe defaults. papermill replaces them with notebooks/params/<target>.yaml",
        "# (make run-t4 / run-ampere / run-hopper); on Colab the next cell loads this set's GPU file.",
    ]
    for key, value in values.items():
        lines.append(f"{key} = {pprint.pformat(value, width=100, sort_dicts=False)}")
    return new_code_cell("\n".join(lines), metadata={"tags": ["parameters"]})


def preamble(values: dict[str, str]) -> list:
    setup = [BOOTSTRAP.substitute(values), ENTER_REPO.substitute(values)]
    return [parameters_cell(), *(new_code_cell(code, metadata={"tags": []}) for code in setup)]


def defined_names(code: str) -> set[str]:
    """The names a cell assigns or imports."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


BLOCK_START = re.compile(r"#|>|\||```|~~~|[-*+] |\d+[.)] |    |\t")


def unwrap(text: str) -> str:
    """Each Markdown paragraph on one line, as in a notebook cell (the sources wrap it for ruff)."""
    lines: list[str] = []
    fenced = False
    for line in text.split("\n"):
        previous = lines[-1] if lines else ""
        if (line and previous and not fenced and not BLOCK_START.match(line)
                and not re.match(r"#|\||```|~~~", previous) and not previous.endswith(("  ", "\\"))):  # fmt: skip
            lines[-1] = f"{previous} {line.strip()}"
        else:
            lines.append(line)
        if line.startswith(("```", "~~~")):
            fenced = not fenced
    return "\n".join(lines)


def fill(text: str, values: dict[str, str], where: str) -> str:
    unknown = set(Template(text).get_identifiers()) - set(values)
    if unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {', '.join(sorted(unknown))}; known: {', '.join(values)}")
    return Template(text).substitute(values)


def source_cells(kind: str) -> list[tuple[str, dict, str, dict[str, str]]]:
    """The cells of notebooks/source/<kind>.py as (where, metadata, cell type, {lang: text}): a code cell's
    text is the same in both languages, a markdown cell's Vietnamese text is the twin that follows it."""
    path = SOURCES / f"{kind}.py"
    cells: list[tuple[str, dict, str, dict[str, str]]] = []
    for number, cell in enumerate(jupytext.read(path, fmt="py:percent").cells, 1):
        where = f"{path.relative_to(ROOT)}, cell {number}"
        meta = {k: v for k, v in cell.metadata.items() if k not in LAYOUT_KEYS}
        if set(meta) - CELL_KEYS:
            raise ValueError(f"{where}: unknown cell metadata {sorted(set(meta) - CELL_KEYS)}; known: {CELL_KEYS}")
        unknown_sets = set(meta.get("sets", [])) - set(targets.notebook_sets())
        if unknown_sets:
            raise ValueError(f"{where}: unknown notebook set(s) {sorted(unknown_sets)}")
        previous = cells[-1] if cells else None
        if meta.get("lang") == "vi":
            if not previous or previous[2] != "markdown" or "vi" in previous[3] or set(meta) != {"lang"}:
                raise ValueError(f"{where}: a Vietnamese cell (lang=\"vi\") follows its English markdown cell and "
                                 "carries no other metadata")  # fmt: skip
            previous[3]["vi"] = unwrap(cell.source)
        elif previous and previous[2] == "markdown" and "vi" not in previous[3]:
            raise ValueError(f'{previous[0]}: this markdown cell has no Vietnamese twin (lang="vi") after it')
        elif cell.cell_type == "markdown":
            cells.append((where, meta, "markdown", {"en": unwrap(cell.source)}))
        else:
            cells.append((where, meta, cell.cell_type, {lang: cell.source for lang in LANGS}))
    if cells and cells[-1][2] == "markdown" and "vi" not in cells[-1][3]:
        raise ValueError(f'{cells[-1][0]}: this markdown cell has no Vietnamese twin (lang="vi") after it')
    return cells


def notebook(set_name: str, kind: str, lang: str = "en"):
    """The notebook `kind` of `set_name` in `lang` (en, vi), without outputs."""
    values = placeholders(set_name, kind, lang)
    cells = []
    for where, meta, cell_type, texts in source_cells(kind):
        text = texts[lang]
        if set_name not in meta.get("sets", [set_name]):
            continue
        if meta.get("preamble"):
            generated = preamble(values)
            extra = defined_names(text) - set().union(*(defined_names(c.source) for c in generated))
            if extra:
                raise ValueError(f"{where}: the preamble stand-in defines {sorted(extra)}, which the parameters "
                                 "and set-up cells do not (notebooks/params/cpu.yaml)")  # fmt: skip
            cells += generated
        elif cell_type == "markdown":
            cells.append(new_markdown_cell(fill(text, values, where)))
        else:
            cells.append(new_code_cell(fill(text, values, where), metadata={"tags": list(meta.get("tags", []))}))
    if sum("parameters" in c.metadata.get("tags", []) for c in cells) != 1:
        raise ValueError(f"{(SOURCES / kind).relative_to(ROOT)}.py: {set_name} needs exactly one preamble=true cell")
    for i, cell in enumerate(cells):  # ids from the cell's place and text: a rebuild changes only what changed
        cell.id = f"c{i:03d}-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
    return new_notebook(cells=cells, metadata=METADATA)


def write_all() -> list[Path]:
    paths = []
    for set_name in targets.notebook_sets():
        for kind in KINDS:
            for lang in LANGS:
                path = ROOT / relative_path(set_name, kind, lang)
                path.parent.mkdir(exist_ok=True)
                nbformat.write(notebook(set_name, kind, lang), path)
                paths.append(path)
    return paths


def outputs_to_vietnamese(path: Path) -> Path:
    """Copy the outputs of the executed English notebook `path` into its Vietnamese twin (vi/ beside it):
    the same code cells, in the same order, so the same outputs; refused if the code differs."""
    english, twin = nbformat.read(path, as_version=4), path.parent / "vi" / path.name
    vietnamese = nbformat.read(twin, as_version=4)
    code = [[c for c in nb.cells if c.cell_type == "code"] for nb in (english, vietnamese)]
    if [c.source for c in code[0]] != [c.source for c in code[1]]:
        raise ValueError(f"{twin}: its code cells differ from {path}'s: run notebooks/build.py first")
    for source, target in zip(*code, strict=True):
        target.outputs, target.execution_count = source.outputs, source.execution_count
    vietnamese.metadata = english.metadata
    nbformat.write(vietnamese, twin)
    return twin


def strip(path: Path) -> None:
    """Keep outputs, drop what changes on every run: execution times, papermill metadata, kernel
    versions; and the cell papermill injects (the parameters cell already holds the same values)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [_clean_output(o) for o in cell.outputs]
    nb.metadata.pop("papermill", None)
    nb.metadata.get("language_info", {}).pop("version", None)
    nbformat.write(nb, path)


def _clean_output(output):
    """No colour codes, and no absolute paths of the machine that ran the notebook."""
    if output.get("output_type") == "stream":
        text = re.sub(r"\x1b\[[0-9;]*m", "", output["text"])
        output["text"] = text.replace(f"{ROOT}/", "").replace(str(Path.home()), "~")
    return output


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strip", nargs="*", metavar="NOTEBOOK", help="strip run metadata from executed notebooks")
    p.add_argument("--to-vi", nargs="*", metavar="NOTEBOOK", help="copy English notebooks' outputs into vi/")
    args = p.parse_args()
    if args.strip is not None:
        for path in args.strip:
            strip(Path(path))
        return 0
    if args.to_vi is not None:
        for path in args.to_vi:
            print(f"outputs of {path} -> {outputs_to_vietnamese(Path(path).resolve()).relative_to(ROOT)}")
        return 0
    for path in write_all():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
