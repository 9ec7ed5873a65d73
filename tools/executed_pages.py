"""The notebooks as they ran on a GPU, as pages of the site. Each executed notebook of RUNS (papermill's
output of an English notebook, committed under results/<card>/) becomes docs/<lang>/ran/<target>-<kind>.md
in each language, with pictures in docs/<lang>/ran/img/. A page holds:
- the prose of today's notebook in that language (the English notebook, or its twin in vi/);
- its code, with the parameters papermill ran it with;
- what it printed and drew.

    python tools/executed_pages.py           write the pages
    python tools/executed_pages.py --check   exit 1 if a page no longer matches its run (tests/test_executed_pages.py)

A page names the card (results/<card>/...), the parameters file and the day it ran, and links the notebook
it was made from. An executed notebook whose code cells are not the notebook's of today is refused by
name: run it again. Nothing is re-run here; the pages only show what the committed notebooks hold.
Long text outputs keep their last lines, and warnings on stderr are left out; the notebook has all of it.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# (target, notebook set, folder of its executed notebooks, the notebooks of it shown)
RUNS: list[tuple[str, str, str, list[str]]] = [
    ("t4", "flash_attn_1", "results/h100/notebooks/t4",
     ["01_install", "02_build", "03_train_wikisource", "04_benchmark", "05_from_scratch"]),
    ("hopper", "flash_attn_4", "results/h100/notebooks/hopper",
     ["01_install", "02_build", "03_train_wikisource", "04_benchmark", "05_from_scratch"]),
]  # fmt: skip
MAX_LINES = 40  # of one text output
FOLD_LINES = 12  # a longer text output is folded (a log, a grid's progress): the page reads as code, tables, plots
WORDS = {
    "en": {
        "title": "{kind}, as it ran on an {card}",
        "intro": "Notebook `{kind}` of the {set} set, executed whole by papermill with "
        "`notebooks/params/{target}.yaml` on the {card} of `{folder}` on {date}: its code and outputs as they ran "
        "([the notebook]({url})); warnings on stderr are left out. {stand_in}",
        "stand_in": "Not a T4: with the T4 set's parameters, this GPU stood in for one.",
        "cut": "… {n} lines above left out (the notebook has them)",
        "output": "output",
        "fold": "What it printed ({n} lines)",
    },
    "vi": {
        "title": "{kind}, như đã chạy trên {card}",
        "intro": "Notebook `{kind}` của bộ {set}, do papermill chạy trọn với `notebooks/params/{target}.yaml` trên "
        "{card} của `{folder}` ngày {date}: mã và đầu ra đúng như khi chạy ([notebook]({url})); các cảnh báo trên "
        "stderr được bỏ qua. {stand_in}",
        "stand_in": "Không phải T4: với tham số của bộ T4, GPU này đóng vai một chiếc T4.",
        "cut": "… bỏ bớt {n} dòng phía trên (notebook còn đủ)",
        "output": "đầu ra",
        "fold": "Những gì ô in ra ({n} dòng)",
    },
}
SETS = {"flash_attn_1": "flash-attn 1.x", "flash_attn_2": "flash-attn 2.x", "flash_attn_4": "flash-attn 4"}


class StaleRun(ValueError):
    """An executed notebook whose code is no longer the notebook's."""


def cells(executed: Path, set_name: str, kind: str, lang: str) -> list:
    """The cells of today's notebook in `lang` (English, or its Vietnamese twin): its prose, with the executed
    code cells and their outputs in order; the defaults' parameters cell left out (the cell papermill
    injected after it says what ran). Prose mended since the run shows as it reads today."""
    run = nbformat.read(executed, as_version=4)
    ran = [c for c in run.cells if "parameters" not in c.metadata.get("tags", [])]
    ran_code = [c for c in ran if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    source = ROOT / "notebooks" / set_name / ("vi" if lang == "vi" else "") / f"{kind}.ipynb"
    today = nbformat.read(source, as_version=4).cells
    today_code = [c for c in today if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    if [c.source for c in ran_code] != [c.source for c in today_code]:
        raise StaleRun(f"{executed}: its code is not {source.relative_to(ROOT)}'s of today: run it again "
                       "(experiments/t4_stand_in/jobs.sh, experiments/h100/notebook_jobs.sh)")  # fmt: skip
    out, code = [], iter(ran_code)
    injected = [c for c in ran if "injected-parameters" in c.metadata.get("tags", [])]
    for cell in today:
        if "parameters" in cell.metadata.get("tags", []):
            out += injected
        elif cell.cell_type == "code":
            out.append(next(code))
        else:
            out.append(cell)
    return out


def prose(text: str) -> str:
    """A markdown cell, its headings one level down (the page has its own title), a badge as a plain link."""
    text = re.sub(r"\[!\[([^\]]*)\]\([^)]*\)\]", r"[\1]", text)
    return re.sub(r"^(#{1,5}) ", r"#\1 ", text, flags=re.M)


PROGRESS = re.compile(r"^(Validation|Sanity Checking)\b.*\|.*\d+/(\d+|\?)")  # a run's nested bars


def as_shown(text: str) -> list[str]:
    """Text as a terminal leaves it: a line rewritten with carriage returns (a progress bar) is its last
    state; escape codes are dropped, and so are the validation bars nested in a training bar."""
    lines = []
    for line in re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).rstrip("\n").split("\n"):
        states = [part.rstrip() for part in line.split("\r") if part.strip()]
        shown = states[-1] if states else ("" if "\r" not in line else None)
        if shown is not None and not PROGRESS.match(shown):
            lines.append(shown)
    return lines


def text_block(text: str, words: dict) -> str:
    """A text output as a terminal leaves it (`as_shown`), its last MAX_LINES lines; longer than FOLD_LINES,
    folded (a collapsed block the reader opens)."""
    lines = as_shown(text)
    shown = len(lines)
    if len(lines) > MAX_LINES:
        lines = [words["cut"].format(n=len(lines) - MAX_LINES), *lines[-MAX_LINES:]]
    block = "```text\n" + "\n".join(lines).replace("```", "` ` `") + "\n```"
    if shown <= FOLD_LINES:
        return block
    return f'??? note "{words["fold"].format(n=shown)}"\n\n' + "\n".join(
        "    " + line if line else "" for line in block.split("\n")
    )


def merged_streams(outputs: list) -> list:
    """The outputs with each run of stdout streams as one (papermill keeps every flush: a progress bar is
    hundreds); stderr is left out."""
    merged = []
    for output in outputs:
        if output.output_type == "stream" and output.name != "stdout":
            continue
        if output.output_type == "stream" and merged and merged[-1].output_type == "stream":
            merged[-1] = nbformat.from_dict({**merged[-1], "text": merged[-1].text + output.text})
        else:
            merged.append(output)
    return merged


def page(target: str, set_name: str, folder: str, kind: str, lang: str, repo: str) -> tuple[str, dict[str, bytes]]:
    """The page's Markdown, and its pictures by file name."""
    executed, words = ROOT / folder / f"{kind}.ipynb", WORDS[lang]
    parts = Path(folder).parts
    card = parts[parts.index("results") + 1].upper()  # results/<card>/...
    date = (nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("start_time") or "?")[:10]
    parts = [
        f"# {words['title'].format(kind=kind, card=card)}",
        words["intro"].format(kind=kind, set=SETS[set_name], target=target, card=card, folder=folder, date=date,
                              url=f"{repo}/blob/main/{folder}/{kind}.ipynb",
                              stand_in=words["stand_in"] if target == "t4" else "").rstrip(),
    ]  # fmt: skip
    pictures: dict[str, bytes] = {}
    for cell in cells(executed, set_name, kind, lang):
        if cell.cell_type == "markdown":
            parts.append(prose(cell.source))
            continue
        parts.append("```python\n" + cell.source + "\n```")
        for output in merged_streams(cell.get("outputs", [])):
            data = output.get("data", {})
            if output.output_type == "stream":  # stdout: merged_streams leaves stderr out
                parts.append(text_block(output.text, words))
            elif "image/png" in data:
                name = f"{target}-{kind}-{len(pictures) + 1}.png"
                pictures[name] = base64.b64decode(data["image/png"])
                parts.append(f"![{words['output']}](img/{name})")
            elif "text/markdown" in data:
                parts.append(prose(data["text/markdown"]))
            elif "text/plain" in data:
                parts.append(text_block(data["text/plain"], words))
            elif output.output_type == "error":
                parts.append(text_block("\n".join(output.get("traceback", [])), words))
    return "\n\n".join(parts) + "\n", pictures


def pages(runs=None, repo: str | None = None) -> dict[Path, bytes]:
    """Every file this writes, by path."""
    if repo is None:
        import tomllib

        repo = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    files: dict[Path, bytes] = {}
    for lang in WORDS:
        for target, set_name, folder, kinds in RUNS if runs is None else runs:
            for kind in kinds:
                text, pictures = page(target, set_name, folder, kind, lang, repo)
                files[DOCS / lang / "ran" / f"{target}-{kind}.md"] = text.encode()
                files.update({DOCS / lang / "ran" / "img" / name: data for name, data in pictures.items()})
    return files


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, data in pages().items():
        if not path.exists() or path.read_bytes() != data:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    print(("stale: " if check else "wrote: ") + ", ".join(map(str, stale)) if stale else "up to date")
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
