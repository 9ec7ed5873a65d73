"""The READMEs as GitHub shows them: every "Open in Colab" badge of the notebook table renders.

GitHub renders Markdown as GitHub Flavored Markdown, where a table row keeps only as many cells as
its header has; extra cells are dropped silently. markdown-it-py's "gfm-like" preset follows the
same table rules (markdown-it-py comes with jupytext, which requirements-dev.txt installs)."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "README.vi.md")
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETS = ("flash_attn_1", "flash_attn_2", "flash_attn_4")
NOTEBOOKS = ("01_install", "02_build", "03_train_wikisource", "04_benchmark", "05_from_scratch")
EXPECTED = {f"notebooks/{s}/{n}.ipynb" for s in SETS for n in NOTEBOOKS}  # README.md's: the English notebooks
EXPECTED_VI = {f"notebooks/{s}/vi/{n}.ipynb" for s in SETS for n in NOTEBOOKS}  # README.vi.md's: their Vietnamese twins


class _BadgeLinks(HTMLParser):
    """The href of every <a> that holds the Colab badge <img>, and the number of badge images."""

    def __init__(self) -> None:
        super().__init__()
        self.open_links: list[str | None] = []
        self.badge_links: list[str | None] = []
        self.badge_images = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.open_links.append(attrs.get("href"))
        elif tag == "img" and attrs.get("src") == BADGE:
            self.badge_images += 1
            self.badge_links.append(self.open_links[-1] if self.open_links else None)

    def handle_endtag(self, tag):
        if tag == "a" and self.open_links:
            self.open_links.pop()


def _render_text(text: str) -> str:
    # linkify (bare URLs become links) needs linkify-it-py and changes nothing in a table
    return MarkdownIt("gfm-like", {"linkify": False}).render(text)


def _render(name: str) -> str:
    return _render_text((ROOT / name).read_text())


def _repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")


def test_gfm_renderer_renders_tables():
    html = _render_text("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n")
    assert "<table>" in html and "<td>2</td>" in html
    assert "<td>3</td>" not in html, "a cell beyond the header's columns should be dropped, as on GitHub"


@pytest.mark.parametrize("name", READMES)
def test_every_colab_badge_renders(name: str):
    parser = _BadgeLinks()
    parser.feed(_render(name))
    assert parser.badge_images == 16, (
        f"{name}: {parser.badge_images} Colab badges render, expected 16 (Start here, then 3 sets x 5 notebooks); "
        "a table row with more cells than its header loses the extra ones"
    )
    owner_name = urlsplit(_repository()).path.strip("/")
    prefix = f"https://colab.research.google.com/github/{owner_name}/blob/main/"
    paths = []
    for href in parser.badge_links:
        assert href and href.startswith(prefix), f"{name}: badge link {href!r} does not start with {prefix}"
        paths.append(href.removeprefix(prefix))
    vietnamese = name == "README.vi.md"
    expected = EXPECTED_VI if vietnamese else EXPECTED
    start = f"notebooks/flash_attn_1/{'vi/' if vietnamese else ''}01_install.ipynb"
    assert paths[0] == start, f"{name}: Start here opens {paths[0]}, not the T4 set's 01 in its language"
    assert len(set(paths)) == 15, f"{name}: the badges do not point at 15 distinct notebooks: {sorted(paths)}"
    assert set(paths) == expected, (
        f"{name}: badges point at {sorted(set(paths) - expected)}, missing {sorted(expected - set(paths))}"
    )
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert not missing, f"{name}: badges point at notebooks that are not in the repository: {missing}"


@pytest.mark.parametrize("name", READMES)
def test_readme_repository_links_match_pyproject(name: str):
    """Every GitHub or Colab link to this project uses the address in pyproject.toml."""
    owner_name = urlsplit(_repository()).path.strip("/")
    text = (ROOT / name).read_text()
    for url in re.findall(r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/", text):
        assert url == owner_name, f"{name}: Colab link for {url}, but pyproject.toml says {owner_name}"
