"""The parameters of a training run: `TrainConfig`, read from YAML and overridden by name.

One YAML file of `TrainConfig` fields drives the command line (``python -m vanilla_flash train
--config notebooks/params/cpu.yaml``) and the notebooks (the `train` section of a notebook
parameters file); ``--set KEY=VALUE`` overrides a field. An unknown field is refused by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vanilla_flash.errors import ConfigError


@dataclass
class TrainConfig:
    # where things go
    run_dir: str = "runs/tiny-vi"
    ckpt_dir: str | None = None  # default run_dir/checkpoints; on Colab a Google Drive folder
    cache_dir: str | None = None  # token cache; default run_dir/../cache
    # data
    data_source: str = "sample"  # sample | hub
    fallback_to_sample: bool = True  # hub only: train on the shipped sample, with a note, when the Hub is unreachable
    lang: str = "vi"
    max_docs: int | None = None
    max_bytes: int | None = None
    val_fraction: float = 0.1
    # tokenizer
    tokenizer: str = "gpt2"  # gpt2 | bpe
    bpe_vocab_size: int = 4096
    # model
    model_impl: str = "hf"  # hf (transformers' GPT2LMHeadModel) | flash_attn (flash-attn's own GPT, fa_gpt)
    fused: list = field(default_factory=list)  # flash_attn model only: fused_bias_fc, fused_mlp, ...
    model_size: str = "tiny"
    seq_len: int = 128
    attn: str = "auto"
    dropout: float = 0.0
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune
    # optimisation
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10
    max_steps: int = 60
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (from the hardware) | 32-true | 16-mixed | bf16-mixed
    seed: int = 1234
    # hardware
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"  # auto | ddp | fsdp
    # what to watch
    log_every: int = 5
    val_every: int = 20
    val_batches: int = 8
    sample_every: int = 0  # 0: only at the end
    sample_prompt: str = "Trăm năm trong cõi người ta,"
    sample_tokens: int = 40
    ckpt_every: int = 20
    resume: str = "auto"  # auto (last.ckpt if there is one) | never | a checkpoint path
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path, **overrides) -> TrainConfig:
        import yaml

        values = yaml.safe_load(Path(path).read_text()) or {}
        if isinstance(values.get("train"), dict):  # a notebook parameters file: its `train` section
            values = values["train"]
        return cls.from_dict({**values, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training parameters: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "betas" in values:
            values = {**values, "betas": tuple(values["betas"])}
        return cls(**values)

    @property
    def checkpoints(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(self.run_dir) / "checkpoints"

    @property
    def token_cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.run_dir).parent / "cache"
