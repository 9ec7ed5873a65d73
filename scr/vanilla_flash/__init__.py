"""Vanilla Flash: FlashAttention by doing it, GPT-2 on Wikisource with PyTorch Lightning.

Modules: `env` (what this machine is), `attention` (the backend registry), `model` (GPT-2 by
name), `precision` (which precision to train in), `check` (backends against an fp32 reference).
"""

__version__ = "0.1.0"
