"""A Colab runtime file for tools/colab_twin.py, made from googlecolab/backend-info's pip freeze of that runtime:

    python tools/colab/runtime_file.py FREEZE --name 2026.08 --python 3.13.15 --commit SHA \
        > tools/colab/runtime-2026.08.txt

The freeze is used as pip constraints, so whatever the twin installs comes at Colab's version. What pip cannot
take from PyPI is left out, each line kept as a comment that says why: git, URL and file installs; Colab's CUDA
packages that belong to its cu128 torch (PyPI's torch is the cu130 build of the same release, and the twin has
no GPU); torch's companion builds from the CUDA index; and the CUDA 13 NCCL that Colab lists beside its cu12 one
but that PyPI's torch pins at another version. torch itself is kept at Colab's release, its local label dropped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CU128_COMPANIONS = ("cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-python", "cuda-toolkit")
INDEX_BUILDS = ("torchaudio", "torchcodec", "torchvision")
NCCL_13 = "nvidia-nccl-cu13"  # Colab 2026.08 lists it; PyPI's torch 2.11.0 (cu130) needs another version of it


def convert(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        name = re.split(r"[=@ <>!~]", line, maxsplit=1)[0].strip().lower()
        if not line.strip() or line.startswith("#"):
            continue
        if " @ " in line:
            out.append(f"# {line}  (left out: a git, URL or file install, not on PyPI)")
        elif name in CU128_COMPANIONS:
            out.append(f"# {line}  (left out: it belongs to the cu128 torch build, PyPI's torch needs the CUDA 13 one)")
        elif name in INDEX_BUILDS and "+cu" in line:
            out.append(f"# {line}  (left out: a CUDA-index build)")
        elif name == NCCL_13:
            why = "PyPI's torch pins its own nvidia-nccl-cu13; Colab's cu128 torch uses cu12"
            out.append(f"# {line}  (left out: {why})")
        elif name == "torch" and "+" in line:
            out.append(f"{line.split('+')[0]}  # Colab: {line.split('==')[1]} (see the header)")
        else:
            out.append(line)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("freeze", help="pip-freeze.gpu.txt of googlecolab/backend-info at the runtime's commit")
    p.add_argument("--name", required=True, help="the runtime's name, e.g. 2026.08")
    p.add_argument("--python", required=True, help="its Python version (os-info-gpu.txt)")
    p.add_argument("--commit", required=True, help="the backend-info commit the freeze is from")
    args = p.parse_args()
    header = [
        f"# Colab's {args.name} runtime (Python {args.python}, GPU image), as googlecolab/backend-info recorded it:",
        f"# pip-freeze.gpu.txt at commit {args.commit}.",
        "# Used as pip constraints by tools/colab_twin.py: whatever the twin installs comes at Colab's version.",
        "# Changed here by tools/colab/runtime_file.py, each line marked: what pip cannot take from PyPI is left out",
        "# (git and URL installs, the cu128 build's CUDA packages, CUDA-index builds); torch is Colab's release",
        "# from PyPI (Colab's is the cu128 build from the PyTorch index, PyPI's the cu130 one: the same release,",
        "# and the twin has no GPU).",
    ]
    sys.stdout.write("\n".join(header + convert(Path(args.freeze).read_text().splitlines())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
