"""Vanilla Flash: FlashAttention by doing it, GPT-2 on Wikisource with PyTorch Lightning.

Modules, in the order they import each other (each imports only modules above it):

- `errors`: one base class, `VanillaFlashError`, and one subclass per domain.
- `files`: files written whole or not at all (`write_atomic`).
- `targets`: the table of targets (cpu, t4, ampere, hopper) and the compute-capability rule.
- `env`: what this machine is (GPU, versions, Colab), read into a `Machine`.
- `flash_attn_backends`: the calls into flash-attn 1.x, 2.x and 4, and the varlen helpers.
- `masks`: the masks transformers builds for our backends (none where `is_causal` says the same).
- `attention`: the backend registry, `why_not`, the `auto` rule, `attend`.
- `machine_report`: the machine joined with the rules (`describe`), and the provenance of results.
- `precision`: which Lightning precision the hardware trains in.
- `model`: GPT-2 by name, as Hugging Face `GPT2LMHeadModel`.
- `loss_kernel`: the chunked loss's softmax step as one Triton kernel.
- `vanilla_gpt`: GPT-2 written compactly for speed, in transformers' weight layout.
- `flops`: parameters, FLOPs per token, attention FLOPs, MFU.
- `config`: `TrainConfig`, the parameters of a run.
- `data`: Wikisource documents, the split by size, tokenizers, packed blocks.
- `datamodule`: `WikisourceData`, the Lightning data module, and its resumable training order.
- `plots`: figure helpers and the loss curve.
- `callbacks`: throughput, samples, a stop at a diverged loss, a checkpoint at Ctrl-C, the step timer.
- `checkpoints`: a run's folders checked and locked before it starts, atomic writes, which checkpoint to resume.
- `install`: the right flash-attn for this machine, and the cache of built wheels.
- `builds`: flash-attn 1.x and 2.x built from source: only the architectures and kernels asked for, timed.
- `fused_extensions`: flash-attn 1.x's fused CUDA extensions, what they do, and their builds.
- `fa_gpt`: flash-attn's own GPT model and its fused extensions.
- `train`: the LightningModule, the run, its checkpoints and summary.
- `check`: every backend against an fp32 reference.
- `timing`: GPU timing and peak-memory helpers.
- `from_scratch`: FlashAttention written from scratch (online softmax, tiles, recomputation, a CUDA kernel).
- `bench_attention`: the attention kernel benchmarks.
- `bench_training`: training benchmarks, bare loop and Lightning.
- `report`: plots and tables from results files.
- `tables`: the Markdown tables the README and the docs quote from results files.
- `notebook`: helpers the notebook cells call, and the papermill runner.
- `cli`: ``python -m vanilla_flash COMMAND``.
"""

__version__ = "0.1.0"
