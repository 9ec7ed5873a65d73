"""MkDocs hook: repository links written once.

Pages write ``{{repo_url}}`` (the repository), ``{{repo_blob}}`` (a file on the default branch) and
``{{colab}}`` (a notebook opened in Google Colab); this hook fills them in from ``repo_url`` and
``extra.repo_branch`` in mkdocs.yml, so the repository's address lives in one place.
"""

from __future__ import annotations

from urllib.parse import urlparse


def placeholders(repo_url: str, branch: str = "main") -> dict[str, str]:
    repo = repo_url.rstrip("/")
    owner_name = urlparse(repo).path.strip("/")
    return {
        "{{repo_url}}": repo,
        "{{repo_blob}}": f"{repo}/blob/{branch}",
        "{{colab}}": f"https://colab.research.google.com/github/{owner_name}/blob/{branch}",
    }


def on_page_markdown(markdown: str, page, config, files) -> str:
    for key, value in placeholders(config.repo_url, config.extra.get("repo_branch", "main")).items():
        markdown = markdown.replace(key, value)
    return markdown
