"""The tutorial site (mkdocs.yml, docs/): both languages complete and in the nav, every relative link
and image resolves, and `mkdocs build --strict` succeeds."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LANGS = ("en", "vi")
MAX_PNG_BYTES = 150 * 1024

# [text](target) and ![alt](target "title"); link text may hold one level of brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["']([^"']+)["']""", re.IGNORECASE)
FENCE = re.compile(r"^(\s*)(```|~~~).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
PLACEHOLDER = re.compile(r"\{\{[a-z_]+\}\}")
ANCHOR = re.compile(r"\{ *#([\w-]+) *\}")


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _pages(lang: str) -> set[str]:
    return {p.relative_to(DOCS / lang).as_posix() for p in (DOCS / lang).rglob("*.md")}


def _nav_entries(items) -> list[tuple[str, str]]:
    """(title, file) for every page in an mkdocs nav."""
    out = []
    for item in items:
        for title, value in item.items():
            if isinstance(value, list):
                out += [(title, "")] + _nav_entries(value)
            else:
                out.append((title, value))
    return out


def _hook():
    spec = importlib.util.spec_from_file_location("repo_links", DOCS / "hooks" / "repo_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markdown_files() -> list[Path]:
    return sorted([*DOCS.rglob("*.md"), ROOT / "README.vi.md"])


def _link_targets(text: str) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return [m for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK) for m in pattern.findall(text)]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)) or target.startswith(("{{", "//"))


def test_every_page_exists_in_both_languages():
    en, vi = _pages("en"), _pages("vi")
    assert en, "no pages under docs/en"
    assert not en - vi, f"English pages without a Vietnamese counterpart in docs/vi: {sorted(en - vi)}"
    assert not vi - en, f"Vietnamese pages without an English counterpart in docs/en: {sorted(vi - en)}"


def test_same_explicit_anchors_in_both_languages():
    """Links like troubleshooting.md#libcuda must work in both languages: `{ #id }` headings match."""
    for page in sorted(_pages("en") & _pages("vi")):
        en, vi = (ANCHOR.findall((DOCS / lang / page).read_text()) for lang in LANGS)
        assert en == vi, f"{page}: explicit anchors differ between en {en} and vi {vi}"


def test_every_page_is_in_the_nav():
    nav = {path for _, path in _nav_entries(_config()["nav"]) if path}
    pages = _pages("en") | _pages("vi")
    assert not pages - nav, f"pages missing from the nav in mkdocs.yml: {sorted(pages - nav)}"
    assert not nav - pages, f"nav entries with no page in docs/en and docs/vi: {sorted(nav - pages)}"


def test_every_nav_title_is_translated():
    i18n = next(p["i18n"] for p in _config()["plugins"] if isinstance(p, dict) and "i18n" in p)
    vi = next(lang for lang in i18n["languages"] if lang["locale"] == "vi")
    titles = {title for title, _ in _nav_entries(_config()["nav"])}
    missing = titles - set(vi.get("nav_translations") or {})
    assert not missing, f"nav titles with no Vietnamese translation (nav_translations): {sorted(missing)}"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_images_resolve(path: Path):
    broken = []
    for target in _link_targets(path.read_text()):
        if _is_external(target):
            continue
        file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not file_part:  # an anchor on the same page: the strict build checks those
            continue
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists():
            broken.append(f"{target} (no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved})")
        elif path.is_relative_to(DOCS) and not resolved.is_relative_to(DOCS):
            broken.append(f"{target} (leaves docs/: use {{{{repo_blob}}}}/... or a path in backticks)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_placeholders_are_known():
    known = set(_hook().placeholders("https://github.com/owner/name"))
    for path in DOCS.rglob("*.md"):
        unknown = set(PLACEHOLDER.findall(path.read_text())) - known
        assert not unknown, f"{path.relative_to(ROOT)}: unknown placeholders {sorted(unknown)}; known: {sorted(known)}"


def test_hook_builds_github_and_colab_links():
    links = _hook().placeholders("https://github.com/owner/name/", "main")
    assert links["{{repo_blob}}"] == "https://github.com/owner/name/blob/main"
    assert links["{{colab}}"] == "https://colab.research.google.com/github/owner/name/blob/main"


def test_repo_url_matches_pyproject():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        pytest.skip("pyproject.toml names no repository URL")
    assert _config()["repo_url"].rstrip("/") == urls["Repository"].rstrip("/"), (
        "mkdocs.yml repo_url and pyproject.toml [project.urls] Repository disagree"
    )


def test_figures_are_small():
    pngs = sorted(p for lang in LANGS for p in (DOCS / lang / "img").glob("*.png"))
    assert pngs, "no figures under docs/*/img: run docs/figures/make_figures.py"
    for path in pngs:
        assert path.stat().st_size <= MAX_PNG_BYTES, f"{path.relative_to(ROOT)} is over 150 KB"


def test_strict_build(tmp_path: Path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -r requirements-docs.txt")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    for page in ("index.html", "vi/index.html", "why-flash-attention/index.html", "vi/results/index.html"):
        assert (site / page).exists(), f"{page} missing from the built site"
    built = (site / "index.html").read_text()
    assert "{{" not in built, "a {{placeholder}} was left in the built page"
