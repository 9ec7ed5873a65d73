"""A Colab twin: run a notebook set the way Colab runs it, on a machine that is not Colab.

    python tools/colab_twin.py [--sets flash_attn_1] [--runtime tools/colab/runtime-2026.07.txt]

What is reproduced, per notebook, as on a fresh Colab runtime:
- Colab's Python (3.12 for the 2026.07 runtime) and Colab's versions of the packages it ships that
  the project touches, installed from the runtime's pip freeze (the runtime file, used as pip
  constraints) into a pristine environment; each notebook starts from a copy of it, as each Colab
  notebook starts on a fresh machine;
- a Jupyter kernel with `COLAB_RELEASE_TAG` set, started in an empty folder (Colab's /content);
- the notebook executed from its first cell, the set-up cell included, in that one kernel with no
  restart: the set-up cell clones the repository (from $VANILLA_FLASH_REPO, here this checkout's
  committed HEAD) and pip-installs the set's requirements next to the preinstalled torch;
- a Google Drive folder that outlives the notebooks ($COLAB_DRIVE_MOUNT), as Drive outlives sessions.

What is not: a GPU (this is Colab's CPU runtime: the notebooks take their CPU parameters, as they do
there), Drive's sign-in prompt, the Hub (HF_HUB_OFFLINE=1), and Colab's own front end.

The run fails if any cell fails (which includes the library not importing in the kernel that
installed it), or if torch was replaced or reinstalled. It writes the executed notebooks, a log and
twin.json (per notebook: seconds, torch before and after, what pip changed) to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scr"))
from vanilla_flash import notebook  # noqa: E402  (this checkout's library: the papermill set-up)

# What Colab has installed that the project touches; pip brings their dependencies, all within the
# runtime file's versions.
PREINSTALLED = ["pip", "setuptools", "wheel", "torch", "triton", "transformers", "tokenizers", "datasets",
                "huggingface_hub", "safetensors", "accelerate", "numpy", "pandas", "matplotlib", "PyYAML",
                "ipykernel", "ipython", "jupyter_client", "nbformat", "packaging", "fsspec", "einops", "tqdm",
                "requests", "pyarrow", "psutil"]  # fmt: skip
COLAB_RELEASE_TAG = "release-colab-twin"


def run(cmd: list, log, **kw) -> subprocess.CompletedProcess:
    log(f"$ {' '.join(map(str, cmd))}")
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return done


def pristine(work: Path, python: str, runtime: Path, log) -> Path:
    """The environment as a fresh Colab runtime has it, built once per runtime file."""
    env_dir = work / "pristine"
    stamp = env_dir / "twin-runtime.sha256"
    wanted = hashlib.sha256(runtime.read_bytes() + " ".join(PREINSTALLED).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return env_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    run([python, "-m", "venv", str(env_dir)], log)
    py = env_dir / "bin" / "python"
    started = time.perf_counter()
    run([py, "-m", "pip", "install", "-q", "-c", runtime, *PREINSTALLED], log)
    log(f"pristine environment installed in {time.perf_counter() - started:.0f} s")
    stamp.write_text(wanted)
    return env_dir


def freeze(py: Path) -> dict[str, str]:
    out = subprocess.run([py, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}


def torch_identity(py: Path) -> dict:
    """torch's version and a hash of its installed-files record: a reinstall changes the record."""
    code = ("import importlib.metadata as m, hashlib, torch; d = m.distribution('torch'); "
            "print(torch.__version__, hashlib.sha256(d.read_text('RECORD').encode()).hexdigest()[:16])")  # fmt: skip
    version, record = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"version": version, "record": record}


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    return {
        "installed": sorted(f"{n} {v}" for n, v in after.items() if n not in before),
        "changed": sorted(f"{n} {before[n]} -> {v}" for n, v in after.items() if n in before and before[n] != v),
        "removed": sorted(n for n in before if n not in after),
    }


def kernelspec(work: Path, py: Path, env: dict) -> Path:
    """A kernel named colab-twin that runs `py`, with Colab's environment variables."""
    folder = work / "jupyter" / "kernels" / "colab-twin"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Colab twin",
            "language": "python", "env": env}  # fmt: skip
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return work / "jupyter"


def scrub(path: Path, replacements: dict[str, str]) -> None:
    """Executed notebooks name no folder of the machine that ran them."""
    text = path.read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    path.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="flash_attn_1", help="comma-separated notebook sets")
    p.add_argument("--runtime", default=str(ROOT / "tools/colab/runtime-2026.07.txt"))
    p.add_argument("--python", default="python3.12", help="the runtime's Python")
    p.add_argument("--work", default=str(ROOT / ".colab-twin"), help="environments and scratch (not committed)")
    p.add_argument("--out", default=str(ROOT / "results/colab-twin"))
    p.add_argument("--repo", default=f"file://{ROOT}", help="what the set-up cell clones")
    args = p.parse_args()
    import papermill

    work, out, runtime = Path(args.work).resolve(), Path(args.out), Path(args.runtime)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    base = pristine(work, args.python, runtime, log)
    drive = work / "drive"
    (drive / "MyDrive").mkdir(parents=True, exist_ok=True)  # mounted: no sign-in prompt here
    kernel_env = {"COLAB_RELEASE_TAG": COLAB_RELEASE_TAG, "VANILLA_FLASH_REPO": args.repo, "HF_HUB_OFFLINE": "1",
                  "COLAB_DRIVE_MOUNT": str(drive), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}  # fmt: skip
    env_dir = work / "runtime"
    py = env_dir / "bin" / "python"
    os.environ["JUPYTER_PATH"] = str(kernelspec(work, py, kernel_env))
    version = [base / "bin" / "python", "-c", "import platform; print(platform.python_version())"]
    report = {
        "runtime": runtime.name,
        "python": run(version, log).stdout.strip(),
        "host": platform.platform(),
        "repo": "this checkout's HEAD" if args.repo.startswith("file://") else args.repo,
        "notebooks": [],
    }
    # the notebooks as a reader opens them: from the repository the set-up cell clones
    opened = work / "opened"
    shutil.rmtree(opened, ignore_errors=True)
    run(["git", "clone", "--quiet", "--depth=1", args.repo, opened], log)
    report["commit"] = run(["git", "-C", opened, "rev-parse", "HEAD"], log).stdout.strip()
    failed = 0
    for set_name in args.sets.split(","):
        for src in sorted((opened / "notebooks" / set_name).glob("*.ipynb")):
            shutil.rmtree(env_dir, ignore_errors=True)
            shutil.copytree(base, env_dir, symlinks=True)  # a fresh runtime for every notebook
            content = work / "content"
            shutil.rmtree(content, ignore_errors=True)
            content.mkdir()
            before, torch_before = freeze(py), torch_identity(py)
            dst = out / set_name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            log(f"--- {set_name}/{src.name}: fresh runtime (torch {torch_before['version']}), kernel in /content")
            started, error = time.perf_counter(), None
            try:
                papermill.execute_notebook(str(src), str(dst), kernel_name="colab-twin", cwd=str(content),
                                           log_output=False, progress_bar=False,
                                           config=notebook._local_kernel())  # fmt: skip
            except papermill.PapermillExecutionError as err:
                error = f"{err.ename}: {err.evalue}"
            seconds = round(time.perf_counter() - started, 1)
            torch_after = torch_identity(py)
            diff = changes(before, freeze(py))
            replaced = torch_after != torch_before
            row = {"notebook": f"{set_name}/{src.name}", "ok": error is None and not replaced, "error": error,
                   "seconds": seconds, "torch_before": torch_before, "torch_after": torch_after,
                   "pip": diff}  # fmt: skip
            report["notebooks"].append(row)
            scrub(dst, {str(work): "$TWIN", str(ROOT): "$REPO"})
            log(f"    {'ok' if row['ok'] else 'FAILED'} in {seconds} s" + (f": {error}" if error else ""))
            if replaced:
                log(f"    torch was replaced: {torch_before} -> {torch_after}")
            for kind, items in diff.items():
                if items:
                    log(f"    pip {kind}: {', '.join(items)}")
            failed += not row["ok"]
    log(f"{len(report['notebooks']) - failed} of {len(report['notebooks'])} notebooks ran as on Colab")
    (out / "twin.json").write_text(json.dumps(report, indent=2) + "\n")
    python = Path(args.python).name  # the interpreter by name: where it lives is this machine's business
    (out / "twin.log").write_text("\n".join(line.replace(str(work), "$TWIN").replace(str(ROOT), "$REPO")
                                            .replace(args.python, python) for line in lines) + "\n")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
