"""The parameters of a training run: `TrainConfig`, read from YAML and overridden by name.

One YAML file of `TrainConfig` fields drives the command line (``python -m vanilla_flash train
--config notebooks/params/cpu.yaml``) and the notebooks (the `train` section of a notebook
parameters file); ``--set KEY=VALUE`` overrides a field. Every field is checked when the config is
made, before any data is read: an unknown field, a value of the wrong type or outside what is
allowed is refused with a `ConfigError` naming the field, the value and what is allowed. Numbers
that YAML 1.1 reads as text (``1e-3`` without a dot) are read as the numbers they are.

The module is a leaf: it imports only `errors`. It holds the vocabulary of a run's parameters (GPT-2's
preset sizes, `SIZES` and `dims`; the precisions), and `TrainConfig.dims` is where every size of a run
is read. The attention backend's name is the registry's to check (`attention.check_name`), which the
command line, the notebooks and the run do before any work.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from vanilla_flash.errors import ConfigError

# Wikisource languages set up here, with their configuration of `wikimedia/wikisource` on the Hub
WIKISOURCE_CONFIGS = {"vi": "20231201.vi", "en": "20231201.en"}
SAMPLE_PROMPTS = {"vi": "Trăm năm trong cõi người ta,", "en": "We hold these truths to be self-evident,"}
# Lightning's names of the precisions a run trains in: bf16-true holds the weights and the optimizer's state in
# bfloat16 too (pure bf16 training: faster, other numerics; the mixed ones keep them in float32)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "bf16-true")
# name: (layers, heads, width, context). "tiny" runs a training step on a laptop CPU in a second.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 2, 64, 256),
    "124M": (12, 12, 768, 1024),
    "355M": (24, 16, 1024, 1024),
}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torchao's float8 recipes the vanilla model's matmuls may run in (`float8`; `models.float8`)
FLOAT8_RECIPES = ("tensorwise", "rowwise")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def dims(
    size: str, n_layer: int | None = None, n_head: int | None = None, n_embd: int | None = None
) -> tuple[int, int, int, int]:
    """(layers, heads, width, context) of preset `size`, with any of the first three set by hand."""
    if size not in SIZES:
        raise ConfigError(f"unknown GPT-2 size {size!r}; choose one of: {', '.join(SIZES)}")
    preset = SIZES[size]
    return (n_layer or preset[0], n_head or preset[1], n_embd or preset[2], preset[3])


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
    bpe_vocab_size: int = 4096  # bpe: the vocabulary to train, 260 (the 256 bytes and a few merges) to 65536
    # model
    model_impl: str = "hf"  # hf (transformers' GPT2LMHeadModel) | vanilla (vanilla_gpt) | flash_attn (fa_gpt)
    loss: str = "full"  # full: every position's logits in float32, as transformers does | chunked (vanilla only):
    # a few thousand positions at a time, gradients worked out in the forward pass (vanilla_gpt) | chunked_triton:
    # the same with each chunk's softmax step as one Triton kernel (loss_kernel; a CUDA GPU with Triton)
    residual: str = "float32"  # the residual stream under mixed precision: float32, as transformers keeps it |
    # bf16 (vanilla, bf16-mixed only): half the memory traffic of LayerNorm and the residual adds, other roundings
    float8: str | None = None  # the blocks' matmuls in float8 (vanilla, bf16-mixed; Ada, Hopper and newer; torchao):
    # tensorwise (one scale per tensor) | rowwise (one per row) | null: bf16 (`models.float8`)
    fused: list = field(default_factory=list)  # flash_attn model only: fused_bias_fc, fused_mlp, ...
    model_size: str = "tiny"  # a preset (tiny, 124M, 355M); n_layer, n_head, n_embd change any of its sizes
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None  # a multiple of n_head
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
    precision: str = "auto"  # auto (from the hardware) | 32-true | 16-mixed | bf16-mixed | bf16-true (pure bf16)
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
    sample_prompt: str | None = None  # None: a line of the run's language (SAMPLE_PROMPTS)
    sample_tokens: int = 40
    ckpt_every: int = 20
    resume: str = "auto"  # auto (last.ckpt if there is one) | never | a checkpoint path
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path, **overrides) -> TrainConfig:
        values = read_yaml(path)
        if isinstance(values.get("train"), dict):  # a notebook parameters file: its `train` section
            values = values["train"]
        return cls.from_dict({**values, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training parameters: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            try:
                setattr(self, f.name, typed_value(f.name, getattr(self, f.name), f.type))
            except ConfigError as err:
                problems.append(str(err))
        if not problems:
            problems = _out_of_range(self)
        if problems:
            raise ConfigError("training parameters that cannot be used:\n- " + "\n- ".join(problems))
        if self.sample_prompt is None:
            self.sample_prompt = SAMPLE_PROMPTS[self.lang]

    @property
    def notes(self) -> tuple[str, ...]:
        """What a run with these values does that its author may not expect, in words (said when the run
        starts; nothing here is refused)."""
        return _surprises(self)

    @property
    def model_dims(self) -> dict:
        """The sizes set by hand (n_layer, n_head, n_embd), to change the preset `model_size`."""
        return {k: v for k in ("n_layer", "n_head", "n_embd") if (v := getattr(self, k)) is not None}

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(n_layer, n_head, n_embd, context) of the model: the preset `model_size` with the sizes set
        by hand. Every size of the run is read from here."""
        return dims(self.model_size, **self.model_dims)

    @property
    def head_dim(self) -> int:
        return self.dims[2] // self.dims[1]

    @property
    def model_label(self) -> str:
        """The model in words, for titles: "GPT-2 124M", or its sizes where they differ from the preset."""
        if not self.model_dims:
            return f"GPT-2 {self.model_size}"
        n_layer, n_head, n_embd, _ = self.dims
        return f"GPT-2 ({n_layer} layers, {n_head} heads, width {n_embd})"

    @property
    def checkpoints(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(self.run_dir) / "checkpoints"

    @property
    def token_cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.run_dir).parent / "cache"


def _surprises(cfg: TrainConfig) -> tuple[str, ...]:
    """`TrainConfig.notes`: each value that a run takes without complaint but may not do what was meant."""
    notes = []
    if cfg.warmup_steps > cfg.max_steps:
        notes.append(
            f"warmup_steps ({cfg.warmup_steps}) is more than max_steps ({cfg.max_steps}): the learning rate "
            f"climbs only to {cfg.max_steps / cfg.warmup_steps:.0%} of lr ({cfg.lr:g}) and never decays; "
            f"set warmup_steps to at most max_steps (e.g. {max(1, cfg.max_steps // 10)})"
        )
    return tuple(notes)


def read_yaml(path) -> dict:
    """A YAML file of parameters (a mapping of names to values), or a `ConfigError` that names the
    file and says what is wrong with it: missing, not UTF-8, not YAML, empty, or not a mapping. The
    one way the project reads a parameters file (the command line, the notebooks)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}; the examples are in configs/ and notebooks/params/")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        byte = f"0x{raw[err.start]:02x}"
        raise ConfigError(f"{path} line {line}: byte {byte} is not UTF-8; save the file as UTF-8") from err
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{at}: not valid YAML ({problem}); each line is `name: value`") from err
    if values is None:
        raise ConfigError(f"{path} is empty: it should hold `name: value` lines, e.g. `max_steps: 100`")
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path} holds a YAML {type(values).__name__}, not a mapping of parameters: write one `name: value` "
            "per line, e.g. `max_steps: 100`"
        )
    return values


def typed_value(name: str, value, kind: str):
    """`value` as the type the field is declared with, or a ConfigError naming the field."""
    options = [k.strip() for k in kind.split("|")]
    if value is None and "None" in options:
        return None
    for option in options:
        if option == "bool" and isinstance(value, bool):
            return value
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if option == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option == "float" and isinstance(value, str) and _NUMBER.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as text
        if option == "str" and isinstance(value, str):
            return value
        if option.startswith("tuple") and isinstance(value, list | tuple) and len(value) == 2:
            return tuple(typed_value(name, v, "float") for v in value)
        if option == "list" and isinstance(value, list | tuple):
            return list(value)
        if option == "dict" and isinstance(value, dict):
            return value
    wanted = {
        "int": "a whole number",
        "float": "a number",
        "bool": "true or false",
        "str": "text",
        "None": "null",
        "list": "a list",
        "dict": "a mapping",
    }
    allowed = " or ".join(wanted.get(o, "a pair of numbers, e.g. [0.9, 0.95]") for o in options)
    raise ConfigError(f"{name}: {value!r} is not {allowed}")


def _out_of_range(cfg: TrainConfig) -> list[str]:
    """Every field whose value has the right type but cannot be used, in words."""
    problems = []

    def need(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            problems.append(f"{name}: {getattr(cfg, name)!r} is not allowed; {allowed}")

    def one_of(name: str, choices) -> None:
        need(getattr(cfg, name) in choices, name, f"choose one of: {', '.join(map(str, choices))}")

    one_of("data_source", ("sample", "hub"))
    one_of("lang", tuple(WIKISOURCE_CONFIGS))
    one_of("tokenizer", ("gpt2", "bpe"))
    one_of("model_impl", ("hf", "vanilla", "flash_attn"))
    one_of("loss", ("full", "chunked", "chunked_triton"))
    if cfg.loss != "full" and cfg.model_impl != "vanilla":
        problems.append(
            f"loss: {cfg.loss!r} needs model_impl: vanilla (the {cfg.model_impl} model computes its own loss)"
        )
    one_of("residual", ("float32", "bf16"))
    if cfg.residual == "bf16" and (cfg.model_impl != "vanilla" or cfg.precision not in ("bf16-mixed", "bf16-true")):
        problems.append(
            "residual: 'bf16' needs model_impl: vanilla and precision: bf16-mixed or bf16-true (the other "
            "models keep their residual stream in float32; float16 would overflow)"
        )
    if cfg.float8 is not None:
        one_of("float8", FLOAT8_RECIPES)
        if cfg.model_impl != "vanilla" or cfg.precision != "bf16-mixed":
            problems.append(
                "float8 needs model_impl: vanilla and precision: bf16-mixed (its matmuls are the vanilla "
                "model's; float8 training scales from bf16)"
            )
    one_of("model_size", tuple(SIZES))
    one_of("compile_mode", COMPILE_MODES)
    one_of("precision", ("auto", *PRECISIONS))
    one_of("strategy", ("auto", "ddp", "fsdp"))
    for name in ("max_docs", "max_bytes", "n_layer", "n_head", "n_embd"):
        need(getattr(cfg, name) is None or getattr(cfg, name) >= 1, name, "at least 1, or null")
    need(0 < cfg.val_fraction < 1, "val_fraction", "a fraction between 0 and 1, e.g. 0.1")
    need(260 <= cfg.bpe_vocab_size <= 65536, "bpe_vocab_size", "from 260 to 65536")
    need(cfg.seq_len >= 2, "seq_len", "at least 2 (each block predicts its next token)")
    need(0 <= cfg.dropout < 1, "dropout", "from 0 up to, not including, 1")
    for name in (
        "batch_size",
        "accumulate",
        "max_steps",
        "log_every",
        "val_every",
        "val_batches",
        "ckpt_every",
        "sample_tokens",
    ):
        need(getattr(cfg, name) >= 1, name, "a whole number, at least 1")
    for name in ("warmup_steps", "sample_every", "weight_decay", "grad_clip"):
        need(getattr(cfg, name) >= 0, name, "0 or more")
    need(
        cfg.sample_prompt is None or bool(cfg.sample_prompt.strip()),
        "sample_prompt",
        "some words to start the generated text from, or null for a line in the run's language",
    )
    need(cfg.lr > 0, "lr", "a learning rate above 0, e.g. 6e-4")
    need(0 <= cfg.min_lr <= cfg.lr, "min_lr", f"from 0 to lr ({cfg.lr})")
    need(all(0 <= b < 1 for b in cfg.betas), "betas", "two numbers from 0 up to, not including, 1")
    if cfg.resume not in ("auto", "never") and not cfg.resume.endswith(".ckpt"):
        problems.append(f"resume: {cfg.resume!r} is not allowed; auto, never, or the path of a .ckpt file")
    dims = cfg.dims if cfg.model_size in SIZES else None
    if dims and dims[2] % dims[1]:
        problems.append(f"n_embd: {dims[2]} does not divide by n_head ({dims[1]}); choose a multiple of it")
    return problems
