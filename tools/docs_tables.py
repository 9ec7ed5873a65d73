"""Write the tables that the docs and the README quote from results files, between their markers:

    <!-- table: results/builds.json (tools/docs_tables.py writes it; do not edit) -->
    ...
    <!-- end of table -->

    python tools/docs_tables.py           rewrite every table from its file
    python tools/docs_tables.py --check   exit 1 if one no longer matches its file (tests/test_docs.py)

A page's language (docs/vi/, README.vi.md) picks the table's language. TABLES says which results
files have a table and which function of vanilla_flash.results.tables writes it (from the file's path and
the page's language): results (the key results page, read from several files) and results/builds.json (the
measured builds) and results/h100/notebooks/t4 (how long the T4 set's notebooks took) and
results/h100/kernel_ladder/kernel_ladder.json (notebook 05's kernel ladder against the libraries; the same for its
backward pass, backward.json) and results/h100/kernel_ladder/train_t4.json, train_native.json and
train_t4_600.json (GPT-2 trained through it, `experiments.kernel_ladder.tables`) and
results/h100/speed.json and results/h200/speed.json (GPT-2 training speed per configuration; the same for
the H100's bf16-weights rerun, the fourth run's file, which measured each change on its own, and for the run
with the MLP in cuBLASLt's epilogues) and
results/h200/speed/plain_pytorch_profile.json (the plain-PyTorch GPT-2 it is measured against) and
results/h200/speed/probe-run/plain_probe.json (that GPT-2 written otherwise one thing at a time) and
results/h200/speed/loss_kernel.json (the loss kernel's forms and settings) and
results/h200/speed/best_profile.json (where the best configuration's step spends its GPU time) and
results/h200/speed/loss-curves (a folder: transformers' and the vanilla model's loss over seeds) and
results/h100/speed/bf16-weights-curves-150 (the best in pure bf16 against the same in mixed precision, 150 steps)
and results/h100/speed/step-gaps-run/step_gaps.json (where the GPU waits in a step, `experiments/speed/step_gaps.py`;
the same after Lightning's wait was removed, lightning-fix-run/step_gaps.json, with that run's speed.json) and
results/h100/speed/first-strong-baseline-run/speed.json (the first run against the strongest baseline).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scr"), str(ROOT)]  # the package, and the experiments whose tables the docs quote

from vanilla_flash.results import tables  # noqa: E402

from experiments.kernel_ladder import tables as kernel_ladder  # noqa: E402
from experiments.loss_curves import tables as loss_curves  # noqa: E402
from experiments.speed import probe_tables  # noqa: E402
from experiments.speed import tables as speed_tables  # noqa: E402

TABLES = {
    "results": tables.key_results_markdown,
    "results/builds.json": tables.builds_markdown,
    "results/h100/notebooks/t4": tables.notebook_times_markdown,
    "results/h100/kernel_ladder/kernel_ladder.json": tables.kernel_ladder_markdown,
    "results/h100/kernel_ladder/backward.json": tables.kernel_ladder_markdown,
    "results/h100/kernel_ladder/train_t4.json": kernel_ladder.train_markdown,
    "results/h100/kernel_ladder/train_native.json": kernel_ladder.train_markdown,
    "results/h100/kernel_ladder/train_t4_600.json": kernel_ladder.train_markdown,
    "results/h100/speed.json": speed_tables.speed_markdown,
    "results/h200/speed.json": speed_tables.speed_markdown,
    "results/h100/speed/bf16-run/speed.json": speed_tables.speed_markdown,
    "results/h200/speed/fourth-run/speed.json": speed_tables.speed_markdown,
    "results/h200/speed/fused-mlp-run/speed.json": speed_tables.speed_markdown,
    "results/h200/speed/loss_kernel.json": speed_tables.loss_kernel_markdown,
    "results/h200/speed/best_profile.json": speed_tables.step_profile_markdown,
    "results/h200/speed/plain_pytorch_profile.json": speed_tables.plain_pytorch_markdown,
    "results/h200/speed/probe-run/plain_probe.json": probe_tables.plain_probe_markdown,
    "results/h200/speed/loss-curves": loss_curves.loss_curves_markdown,
    "results/h100/speed/bf16-weights-curves-150": loss_curves.loss_curves_markdown,
    "results/h100/speed/step-gaps-run/step_gaps.json": probe_tables.step_gaps_markdown,
    "results/h100/speed/lightning-fix-run/speed.json": speed_tables.speed_markdown,
    "results/h100/speed/lightning-fix-run/step_gaps.json": probe_tables.step_gaps_markdown,
    "results/h100/speed/first-strong-baseline-run/speed.json": speed_tables.speed_markdown,
}
# a table inside a list item is indented as its markers are, so that it stays in the item
MARKED = re.compile(
    r"^( *)(<!-- table: (\S+) \(tools/docs_tables.py writes it; do not edit\) -->\n)(.*?)^ *(<!-- end of table -->)",
    re.S | re.M,
)


def pages() -> list[Path]:
    return sorted([*ROOT.glob("docs/*/**/*.md"), *ROOT.glob("README*.md")])


def language(page: Path) -> str:
    return "vi" if "vi" in page.relative_to(ROOT).parts or page.name.endswith(".vi.md") else "en"


def rewritten(page: Path) -> str:
    def table(m: re.Match) -> str:
        indent, source = m.group(1), m.group(3)
        if source not in TABLES:
            raise SystemExit(f"{page}: no table is made from {source} (known: {', '.join(TABLES)})")
        text = TABLES[source](ROOT / source, language(page))
        body = "\n".join(indent + line if line else line for line in text.splitlines())
        # a blank line before the end marker: else Markdown reads the marker as one more row of the table
        return f"{indent}{m.group(2)}{body}\n\n{indent}{m.group(5)}"

    return MARKED.sub(table, page.read_text())


def main() -> int:
    stale = []
    for page in pages():
        text = rewritten(page)
        if text != page.read_text():
            stale.append(page.relative_to(ROOT))
            if "--check" not in sys.argv:
                page.write_text(text)
    if "--check" in sys.argv and stale:
        print("tables no longer match their results files (run `python tools/docs_tables.py`):", *stale)
        return 1
    print(f"{'stale' if stale else 'up to date'}: {', '.join(map(str, stale)) or 'every table'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
