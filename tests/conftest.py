import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Triton kernels (vanilla_flash.models.loss_kernel) run in Triton's interpreter here: it must be on before
# triton is first imported, for triton's own library functions are made then
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from vanilla_flash.env import Machine  # noqa: E402


def gpu(name: str, cc: tuple[int, int], **kw) -> Machine:
    facts = dict(device="cuda", gpu_name=name, capability=cc, gpu_memory_gib=80.0, gpu_count=1, cudnn=91900,
                 cuda="13.0", torch="2.11.0")  # fmt: skip
    facts.update(kw)
    return Machine(**facts)


CPU = Machine(torch="2.13.0")
T4 = gpu("Tesla T4", (7, 5), gpu_memory_gib=15.0, colab=True)
A100 = gpu("NVIDIA A100-SXM4-40GB", (8, 0))
A10 = gpu("NVIDIA A10G", (8, 6))
L4 = gpu("NVIDIA L4", (8, 9))
H100 = gpu("NVIDIA H100 80GB HBM3", (9, 0))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_run(tmp_path, **kw):
    """A `TrainConfig` of a few seconds on CPU (tiny GPT-2, trained BPE of 300, the shipped sample)."""
    from vanilla_flash.config import TrainConfig

    values = dict(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                  bpe_vocab_size=300, model_size="tiny", seq_len=32, batch_size=4, max_steps=10, warmup_steps=2,
                  log_every=2, val_every=10, val_batches=1, ckpt_every=10, sample_tokens=4,
                  progress_bar=False)  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


def checkpoint_step(path) -> int:
    """The optimizer steps a checkpoint file holds."""
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def learning_run(tmp_path, **kw):
    """A `TrainConfig` that learns within seconds on CPU: 24 steps at a higher learning rate, logged
    every step (the loss-curve tests)."""
    from vanilla_flash.config import TrainConfig

    values = dict(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), tokenizer="bpe",
                  bpe_vocab_size=512, model_size="tiny", seq_len=32, batch_size=4, max_steps=24, warmup_steps=4,
                  lr=3e-3, min_lr=3e-4, log_every=1, val_every=8, val_batches=2, ckpt_every=6, sample_tokens=8,
                  progress_bar=False)  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


def losses(run_dir) -> dict[int, float]:
    """The training loss of a run's logs, by step."""
    from pathlib import Path

    from vanilla_flash.results import plots

    return {r["step"]: r["train/loss"] for r in plots.read_metrics(Path(run_dir) / "logs") if "train/loss" in r}


def break_flash_attn_import(monkeypatch, error: BaseException, version: str) -> None:
    """Make `import flash_attn...` raise `error`, with flash-attn `version` installed as far as pip knows."""
    import builtins
    import sys

    from vanilla_flash.attention import flash_attn

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name.startswith("flash_attn"):
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    monkeypatch.setattr(flash_attn, "dist_version", lambda name: version)


def refuse_writes_in(monkeypatch, folder) -> None:
    """Writing a file in `folder` fails as a read-only folder does (root writes anywhere, so chmod cannot)."""
    import errno
    from pathlib import Path

    real = Path.write_bytes

    def refused(self, content):
        if self.parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self, content)

    monkeypatch.setattr(Path, "write_bytes", refused)
