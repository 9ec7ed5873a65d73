"""Collect what the T4 stand-in run proved into one JSON (run by experiments/t4_stand_in/jobs.sh).

    python3 experiments/t4_stand_in/report.py OUT

Reads the executed notebooks under OUT/nb and OUT/nb_second_session, the build's build.json, the
training summary and the attention benchmark the notebooks wrote under runs/notebooks/, and asks
cuobjdump what the installed flash-attn kernels were compiled for. Writes OUT/t4_twin.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat

out = Path(sys.argv[1])
root = Path.cwd()


def notebooks(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]  # fmt: skip
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        rows.append({"notebook": f"{path.parent.name}/{path.name}", "ok": not errors,
                     "error": f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else None,
                     "lines": [line for line in text.splitlines() if any(k in line for k in (
                         "GPU memory capped", "compiling for", "built ", "cached wheel", "installed", "flash_attn_1",
                         "steps:", "attention:", "precision:", "data:", "tokens/s"))][:40]})  # fmt: skip
    return rows


def kernels() -> dict:
    """What flash-attn 1.x's CUDA library holds: machine code (ELF) per sm, PTX per compute."""
    where = subprocess.run([sys.executable, "-c", "import torch, flash_attn_cuda; print(flash_attn_cuda.__file__)"],
                           capture_output=True, text=True)  # fmt: skip
    if where.returncode != 0:
        return {"error": where.stderr[-500:]}
    library = where.stdout.strip()
    listing = {}
    for kind in ("elf", "ptx"):
        done = subprocess.run(["cuobjdump", f"--list-{kind}", library], capture_output=True, text=True)
        listing[kind] = sorted({line.split()[-1].rsplit(".", 2)[-2] for line in done.stdout.splitlines()
                                if line.strip()})  # fmt: skip
    return {"library": Path(library).name, **listing}


def read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


import torch  # noqa: E402

summary = read(root / "runs/notebooks/train/summary.json") or {}
bench = read(root / "runs/notebooks/bench/attention.json") or {}
fa1_rows = [r for r in bench.get("rows", []) if r["backend"] == "flash_attn_1"]
report = {
    "what": "the flash-attn 1.x notebook set with t4.yaml on an H200 standing in for a Colab T4",
    "gpu": torch.cuda.get_device_name(0),
    "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    "cap_gib": 15,
    "flash_attn_build": read(root / "build/flash-attn-1/build.json"),
    "flash_attn_kernels": kernels(),
    "notebooks": [row for folder in ("nb", "nb_second_session", "nb_rerun") for row in notebooks(out / folder)],
    "train": {
        k: summary.get(k)
        for k in ("steps", "attention", "precision", "tokens_per_s", "mfu", "peak_mem_gib", "final", "seconds")
    }  # fmt: skip
    | {
        "compile": summary.get("config", {}).get("compile"),
        "data": summary.get("data", {}).get("source"),
        "batch_size": summary.get("config", {}).get("batch_size"),
        "seq_len": summary.get("config", {}).get("seq_len"),
        "accumulate": summary.get("config", {}).get("accumulate"),
    },
    "attention_flash_attn_1": [
        {k: r.get(k) for k in ("dtype", "seq", "head_dim", "causal", "status", "rel_err", "fwd_bwd_ms", "peak_mem_mib")}
        for r in fa1_rows
    ],  # fmt: skip
    "status": (out / "status").read_text().splitlines() if (out / "status").exists() else [],
}
(out / "t4_twin.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({k: report[k] for k in ("gpu", "flash_attn_build", "flash_attn_kernels", "train")}, indent=1))
