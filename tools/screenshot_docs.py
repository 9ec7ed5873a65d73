"""Screenshots of every page of the built site, both languages, as a reader at 1280 px sees them:

    make docs && python tools/screenshot_docs.py [--out site-shots] [--width 1280]

Needs a headless Chromium (Debian: `apt-get install chromium`). Each page is shot whole (a tall window, cut
at the end of the page's content) into OUT/<lang>/<page>.png, to be looked at: tables cut at the right,
lists shown as text, figures too small to read.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shoot(browser: str, page: Path, out: Path, width: int, height: int = 30000) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    from PIL import Image

    image = Image.open(out).convert("L")
    darkest = [min(image.crop((0, y, width, y + 1)).getdata()) for y in range(height)]
    y = height - 1
    while y > 0 and darkest[y] < 250:  # the footer, kept at the bottom of the window
        y -= 1
    while y > 0 and darkest[y] >= 250:  # the white between the page's end and the footer
        y -= 1
    Image.open(out).crop((0, 0, width, min(height, y + 40))).save(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--site", default=str(ROOT / "site"))
    p.add_argument("--out", default=str(ROOT / "site-shots"))
    p.add_argument("--width", type=int, default=1280)
    args = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("no headless Chromium on this machine: apt-get install chromium")
    site = Path(args.site)
    pages = sorted(p for p in site.rglob("index.html") if "assets" not in p.parts)
    for page in pages:
        parts = page.relative_to(site).parts[:-1]
        lang, rest = (parts[0], parts[1:]) if parts[:1] == ("vi",) else ("en", parts)
        out = Path(args.out) / lang / f"{'_'.join(rest) or 'index'}.png"
        shoot(browser, page, out, args.width)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
