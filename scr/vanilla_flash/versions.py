"""Version strings read one way: `packaging.version`, as pip reads them.

torch says "2.11.0+cu130", flash-attn builds of this project "1.0.9+hd64.sm75", CUDA "13.0", Python
"3.12.3": every comparison of a version, and every part taken out of one (its major number, its
"major.minor" for a wheel's name), goes through these functions rather than splitting the text.
An unknown version (None or "") gives None or "".
"""

from __future__ import annotations

from packaging.version import Version


def parse(text: str) -> Version:
    return Version(text)


def major(text: str | None) -> int | None:
    """2 for "2.8.3+hd64.sm90"."""
    return Version(text).major if text else None


def major_minor(text: str | None) -> str:
    """ "2.11" for "2.11.0+cu130"."""
    if not text:
        return ""
    release = Version(text).release
    return f"{release[0]}.{release[1] if len(release) > 1 else 0}"


def at_least(text: str, minimum: str) -> bool:
    """Whether `text` is `minimum` or newer, ignoring a local label ("2.13.0+cpu" is at least "2.13")."""
    return Version(Version(text).public) >= Version(minimum)
