"""Add a measured build to results/builds.json, from the build.json that vanilla_flash.builds.sources wrote
beside its log:

    python experiments/gpu_machine/record_build.py BUILD_JSON --machine "H200, 16 cores, ..." \
        --log results/.../build.log.gz

A row with the same wheel and machine is replaced (a build measured again); every other row stays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIELDS = ("package", "archs", "head_dims", "cuda_files", "cores", "ram_gib", "max_jobs", "seconds", "ok", "wheel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_json", type=Path)
    parser.add_argument("--machine", required=True, help="the machine, in words (cores, GPU or none, torch, nvcc)")
    parser.add_argument("--log", required=True, help="where the build's log is committed")
    parser.add_argument("--results", type=Path, default=Path("results/builds.json"))
    args = parser.parse_args()
    facts = json.loads(args.build_json.read_text())
    missing = [f for f in FIELDS if f not in facts]
    if missing:
        raise SystemExit(f"{args.build_json} lacks {', '.join(missing)}: was it written by build.sources?")
    row = {**{f: facts[f] for f in FIELDS}, "machine": args.machine, "log": args.log}
    results = json.loads(args.results.read_text())
    results["builds"] = [
        r for r in results["builds"] if (r.get("wheel"), r.get("machine")) != (row["wheel"], row["machine"])
    ] + [row]
    args.results.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"{args.results}: {row['package']} {row['wheel']} {row['seconds']} s on {row['machine']}")


if __name__ == "__main__":
    main()
