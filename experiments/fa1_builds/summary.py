"""Both flash-attn 1.0.9 builds of experiments/fa1_builds/jobs.sh in one file, from each build's build.json:

python experiments/fa1_builds/summary.py BUILDS_FOLDER OUT.json
"""

import json
import sys
from pathlib import Path

from vanilla_flash.results import provenance

folder, out = Path(sys.argv[1]), sys.argv[2]
rows = []
for name, what in (("minimal", "head dim 64 only, no block-sparse kernels"), ("shipped", "as flash-attn ships it")):
    facts = folder / name / "build.json"
    rows.append({"build": name, "what": what, **(json.loads(facts.read_text()) if facts.exists() else {"ok": False})})
print(provenance.write_json(out, rows))
