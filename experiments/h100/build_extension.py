"""Build one of flash-attn 1.x's fused extensions for sm90 (or reuse its wheel):

python experiments/h100/build_extension.py NAME FA1_SOURCE WHEELS WORK_DIR
"""

import sys

from vanilla_flash.builds import fused

name, source, wheels, work_dir = sys.argv[1:5]
result = fused.build_extension(name, source, wheels, archs=["90"], work_dir=work_dir)
print(f"{name}: {result.seconds:.0f} s, wheel {result.wheel}")
