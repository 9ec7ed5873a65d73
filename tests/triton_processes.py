"""What the Triton kernels' tests run outside Triton's interpreter (which conftest.py turns on)."""

import os
import subprocess
import sys


def without_the_interpreter(script: str) -> str:
    """`script`'s output, run by Python in a process of its own with Triton's interpreter off: to
    trace a kernel under torch.compile, or to compile it for a GPU that is not here."""
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
