"""What runs on this machine and why the rest does not: the machine's facts joined with the rules;
the provenance every results file starts with, and the one way a result is written (`write_json`).

`describe()` gives a `Report`: the `env.Machine`, its target, for every attention backend `None`
(runs here) or one sentence saying why not and what to use instead, and what `auto` picks. It sits
above `env` (facts) and `attention` (rules), which therefore never import each other.
`provenance()` is what every results file records about the run that made it: when, which
commit, and this report.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vanilla_flash import env
from vanilla_flash.attention import registry as attention
from vanilla_flash.files import write_text_atomic


@dataclass
class Report:
    """`Machine` plus, for every attention backend, `None` (runs here) or why it cannot run."""

    machine: env.Machine
    backends: dict[str, str | None]
    auto_pick: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "machine": dataclasses.asdict(self.machine),
            "backends": self.backends,
            "auto_pick": self.auto_pick,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def __str__(self) -> str:
        m = self.machine
        rows = [("device", m.label), ("target", f"{m.target.name} ({m.target.family})")]
        if m.device == "cuda":
            rows += [
                ("GPU memory", f"{m.gpu_memory_gib:.1f} GiB x {m.gpu_count}"),
                ("driver", m.driver or "?"),
                ("CUDA (torch build)", m.cuda or "?"),
                ("cuDNN", _cudnn_str(m.cudnn)),
            ]
        rows += [
            ("torch", m.torch),
            ("triton", m.triton or "not installed"),
            ("transformers", m.transformers or "not installed"),
            ("python", m.python),
            ("CPU cores", str(m.cpu_count)),
            ("Colab", "yes" if m.colab else "no"),
            ("flash-attn", m.flash_attn or "not installed"),
            ("flash-attn-4", m.flash_attn_4 or "not installed"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines.append("")
        lines.append("attention backends:")
        bwidth = max(len(b) for b in self.backends)
        for name, reason in self.backends.items():
            mark = "yes" if reason is None else "no "
            lines.append(f"  {name:<{bwidth}}  {mark}  {reason or ''}".rstrip())
        if self.auto_pick:
            picks = ", ".join(f"{dt} -> {b}" for dt, b in self.auto_pick.items())
            lines.append(f"auto picks (head dim 64, seq 1024): {picks}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _cudnn_str(version: int | None) -> str:
    if not version:
        return "not available"
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def describe(machine: env.Machine | None = None) -> Report:
    """Report on this machine (or a simulated one): facts, backends that run, and why others do not."""
    notes = []
    if machine is None:
        fixed = env.fix_colab_libcuda()
        if fixed:
            notes.append(fixed)
        machine = env.probe()
    backends = {name: attention.why_not(name, machine) for name in attention.names()}
    picks = {}
    for dtype in machine.target.dtypes:
        picks[dtype] = attention.pick(machine, dtype=dtype, head_dim=64, seq_len=1024)
    return Report(machine=machine, backends=backends, auto_pick=picks, notes=notes)


def git_commit() -> str | None:
    """The commit that runs: $VANILLA_FLASH_COMMIT where the code is a copy whose git metadata is not
    current (a GPU machine that received the working tree), else `git rev-parse HEAD`."""
    if os.environ.get("VANILLA_FLASH_COMMIT"):
        return os.environ["VANILLA_FLASH_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(report: Report | None = None) -> dict:
    """When, which commit, and on what: the head of every results file."""
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "environment": (report or describe()).to_dict(),
    }


def write_json(path: str | os.PathLike, result: dict) -> Path:
    """The one way a result is written: JSON, whole or not at all (`files.write_text_atomic`), its
    folder made, text kept as written (Vietnamese too), anything that is not JSON (a path, a dtype) as
    its text. The command line, the training summary and the GPU jobs under tools/ write through it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    return path
