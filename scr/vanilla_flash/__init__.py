"""Vanilla Flash: FlashAttention by doing it, GPT-2 on Wikisource with PyTorch Lightning.

The package by idea, in the order its parts import each other (each imports only parts above it,
and inside a subpackage its modules import each other without a circle):

- `errors`: one base class, `VanillaFlashError`, and one subclass per domain.
- `files`: files written whole or not at all (`write_atomic`).
- `versions`: version strings read one way (`packaging.version`).
- `config`: `TrainConfig`, the parameters of a run, with GPT-2's sizes and the precisions (a leaf: it
  imports only `errors`).
- `targets`: the table of targets (cpu, t4, ampere, hopper) and the compute-capability rule.
- `env`: what this machine is (GPU, versions, Colab), read into a `Machine`.
- `builds/`: flash-attn onto this machine: the label a build carries and which GPU runs which code
  (`labels`), what to install (`install`), builds from source (`sources`) and the edits they make to
  flash-attn's build files (`edits`), the fused extensions (`fused`), this package's own CUDA sources
  (`kernels/`) compiled here (`inline`).
- `attention/`: the backend registry, `why_not`, the `auto` rule, `attend` (`registry`); the backends it holds
  (`backends`): eager and the SDPA family (`sdpa`), the flash-attn calls (`flash_attn`), notebook 05's kernel
  (`from_scratch`); the masks transformers builds for them (`masks`).
- `results/`: where a result comes from (`provenance`), figures (`plots`), plots and tables from
  results files (`report`, `tables`); the one way a result is written (`provenance.write_json`).
- `models/`: GPT-2 by name (`gpt2`), the compact one (`vanilla`) with its loss kernel (`loss_kernel`) and
  its float8 matmuls (`float8`), flash-attn's GPT (`flash_attn_gpt`), parameters and FLOPs (`flops`).
- `training/`: a run's data (`data`, `datamodule`), precision, callbacks, checkpoints, and the run
  (`run`).
- `bench/`: every backend against an fp32 reference (`check`), timing, the attention benchmarks and their
  memory sweep (`attention`, `memory`), the training benchmarks (`training`).
- `teach/`: FlashAttention written from scratch (`from_scratch`) and its ladder of CUDA kernels (`ladder`).
- `notebook`: helpers the notebook cells call, and the papermill runner.
- `cli`: ``python -m vanilla_flash COMMAND``.

The experiments that produced the committed results (the speed race, the loss curves over seeds, the
builds, the T4 stand-in, ...) are not part of the package: each is a folder of `experiments/` at the
repository's root, whose entry points call the package's public functions.
"""

import logging

__version__ = "0.1.0"

# torchao (float8 training) is imported by transformers wherever it is installed; its C++ extensions, built
# for one torch and one GPU, may not load (a CPU torch, another version) and it says so for each, and
# torch warns about its enums. float8 training needs neither: keep those warnings out of the notebooks.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
