"""Small helpers the notebooks call, so each cell reads like a sentence of the tutorial, and the
papermill runner behind `make run-<target>` (`run()`)."""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from vanilla_flash import env, targets
from vanilla_flash.errors import ConfigError

# Without ipywidgets (papermill, nbval, plain Jupyter) tqdm's progress bars fall back to text, and
# say so in a warning on import that a reader can do nothing about.
warnings.filterwarnings("ignore", message="IProgress not found")


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository folder (the one whose pyproject.toml names vanilla-flash), from `start` up."""
    here = Path(start or Path.cwd()).resolve()
    package_repo = Path(__file__).resolve().parents[2]  # an editable install lives in the checkout
    for folder in (here, *here.parents, package_repo):
        project = folder / "pyproject.toml"
        if project.exists() and 'name = "vanilla-flash"' in project.read_text():
            return folder
    raise FileNotFoundError(f"no vanilla-flash checkout at or above {here}: run the notebook from the repository")


def enter_repo() -> Path:
    """Work from the repository root, so relative paths (configs/, runs/, results/) mean the same
    in Jupyter, papermill, nbval and Colab."""
    root = repo_root()
    os.chdir(root)
    return root


def storage(folder: str, colab_drive: bool = True) -> Path:
    """A folder that outlives the session: on Colab, in Google Drive (mounted on first use, at
    $COLAB_DRIVE_MOUNT if set: the Colab twin points it at a temporary folder); elsewhere, under
    the repository's `runs/`."""
    if colab_drive and env.in_colab():
        drive = Path(os.environ.get("COLAB_DRIVE_MOUNT", "/content/drive"))
        if not (drive / "MyDrive").exists():
            from google.colab import drive as colab_drive_module  # only on Colab

            colab_drive_module.mount(str(drive))
        path = drive / "MyDrive" / "vanilla-flash" / folder
    else:
        path = Path("runs") / folder
    path.mkdir(parents=True, exist_ok=True)
    return path


def show(path: str | os.PathLike | None, width: int = 640):
    """Display a PNG in the notebook (nothing outside Jupyter, or for no path)."""
    try:
        from IPython.display import Image, display
    except ImportError:
        return None
    if path is not None and Path(path).exists():
        display(Image(filename=str(path), width=width))
    return None


def show_markdown(text: str) -> None:
    """Render Markdown (a table from `report`) in the notebook; print it elsewhere."""
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    display(Markdown(text))


def show_source(obj, language: str = "python") -> None:
    """Show the source of `obj` (a function or class of the library, or a string of code) as a code
    block: the notebook teaches the code the library runs, without a copy of it."""
    import inspect

    show_markdown(f"```{language}\n{obj if isinstance(obj, str) else inspect.getsource(obj)}\n```")


def show_solution(obj, label: str = "Solution (click to open) · Lời giải (bấm để mở)") -> None:
    """The library's solution to an exercise, folded away: one click opens it (a `<details>` block)."""
    import inspect

    source = obj if isinstance(obj, str) else inspect.getsource(obj)
    show_markdown(f"<details><summary>{label}</summary>\n\n```python\n{source}\n```\n\n</details>")


def params(target: str) -> dict:
    """The parameters of notebooks/params/<target>.yaml (what papermill injects for that target)."""
    from vanilla_flash.config import read_yaml

    return read_yaml(repo_root() / targets.get(target).params)


def limit_gpu_memory(gib: float | None) -> None:
    """Let this process use at most `gib` GiB of the GPU (None: all of it), so that a bigger GPU can
    stand in for a smaller one (15 for a T4) and a run that would not fit there fails here too."""
    if gib is None:
        return
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_memory_gib={gib}: no GPU here, nothing to cap")
        return
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib / total))
    print(f"GPU memory capped at {gib:.1f} GiB of this GPU's {total:.1f} GiB")


def colab_params(target: str) -> dict:
    """The parameters a notebook opened in Colab runs with (papermill does not run there): its set's
    GPU file (`target`) on a GPU runtime; on a CPU runtime the CPU file, with a note saying so. The
    reader writes the exercises there: `solutions` is off."""
    if env.capability() is None:
        print(
            f"No GPU in this Colab runtime: running with the CPU parameters, not {target}'s. For the GPU "
            "run choose Runtime > Change runtime type > T4 GPU, then run all cells again."
        )
        return {**checked_params(params("cpu")), "solutions": False}
    return {**checked_params(params(target)), "solutions": False}


@dataclass
class NotebookParams:
    """The parameters every notebook takes: the names of its `parameters` cell, as notebooks/params/*.yaml
    writes them, with their types. `train` is checked as a `TrainConfig`, `benchmark` as `BenchmarkParams`."""

    target: str  # cpu, t4, ampere, hopper: whose file fills in what a partial section leaves out
    fa1_archs: list[str]
    fa1_source: str | None
    fa1_head_dims: list[int] | None
    fa1_extensions: list[str]
    fa2_source: str | None
    fa2_archs: list[str] | None
    fa2_head_dims: list[int] | None
    gpu_memory_gib: float | None
    solutions: bool  # 05_from_scratch fills in its exercises with the library's solutions (papermill runs)
    train: dict
    benchmark: dict


@dataclass
class BenchmarkParams:
    """The `benchmark` section, read by 04_benchmark: the attention grid (`bench.attention.run`) and
    the GPT-2 training grid (`bench.training.train_grid`, in the first of `dtypes`)."""

    seq_lens: list[int]
    head_dims: list[int]
    dtypes: list[str]
    tokens: int
    hidden: int
    repeats: int
    train_size: str
    train_seq_lens: list[int]
    train_tokens: int
    train_steps: int


PARAMETERS = tuple(f.name for f in dataclasses.fields(NotebookParams))


def _typed(name: str, value, kind: str):
    """`config.typed_value` (the training config's one rule), and for `list[X]` each item as an X."""
    from vanilla_flash.config import typed_value

    item = re.search(r"list\[(\w+)\]", kind)
    value = typed_value(name, value, re.sub(r"list\[\w+\]", "list", kind))
    if item and isinstance(value, list):
        value = [typed_value(f"{name}[{i}]", v, item.group(1)) for i, v in enumerate(value)]
    return value


def _checked_fields(section: str, declared, values: dict) -> dict:
    """`values` typed as the dataclass `declared` says, or one ConfigError naming every bad field."""
    fields = {f.name: f.type for f in dataclasses.fields(declared)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {section} parameters: {', '.join(unknown)}; known: {', '.join(fields)}")
    checked, problems = {}, []
    for name, value in values.items():
        try:
            checked[name] = _typed(name, value, fields[name])
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError(f"{section} parameters that cannot be used:\n- " + "\n- ".join(problems))
    return checked


def _completed(section: str, given: dict, defaults: dict, target: str) -> dict:
    """`given` over the target's `defaults`; a line that says so when the parameters left fields out."""
    left_out = [k for k in defaults if k not in given]
    if left_out:
        named, file = ", ".join(given) or "no field", targets.get(target).params
        print(f"{section}: {named} from the parameters, the other {len(left_out)} fields from {file}")
    return {**defaults, **given}


def checked_params(raw: dict) -> dict:
    """The notebook parameters `raw` (from papermill's -p/-y, from `--set` through `with_overrides`, from
    Colab's file, or from the parameters cell itself) checked before any work: an unknown name or a value
    of the wrong type is a `ConfigError` naming it, in the training config's words (`config.typed_value`;
    `train` must make a valid `TrainConfig`). A partial `train` or `benchmark` section (``-y "train:
    {max_steps: 10}"``) is completed from the target's parameters file, with a printed line saying so.
    Returns the parameters, each value of its declared type."""
    from vanilla_flash.attention import registry
    from vanilla_flash.config import TrainConfig

    top = _checked_fields("notebook", NotebookParams, raw)
    target = top.get("target")
    if target not in targets.TARGETS:
        allowed = f"{target!r} is not allowed; choose one of: {', '.join(targets.TARGETS)}"
        raise ConfigError(f"notebook parameters that cannot be used:\n- target: {allowed}")
    defaults = params(target)
    top = {**{k: v for k, v in defaults.items() if k not in top}, **top}  # what `raw` leaves out
    train = _completed("train", top["train"], defaults["train"], target)
    cfg = TrainConfig.from_dict(train)  # refuses an unknown field or a bad value by name
    registry.check_name(cfg.attn)
    top["train"] = {k: list(v) if isinstance(v := getattr(cfg, k), tuple) else v for k in train}
    benchmark = _completed("benchmark", top["benchmark"], defaults["benchmark"], target)
    top["benchmark"] = _checked_fields("benchmark", BenchmarkParams, benchmark)
    return top


def verify(backend: str, target: str | None = None) -> list:
    """`backend` and PyTorch's SDPA on one GPT-2-shaped call (a small one on CPU), forward and
    backward against fp32, in the compute dtype the notebook set trains in (`target`: float16 for
    the T4 set, also on a newer GPU): the rows of `check.check_kernels`."""
    import torch

    from vanilla_flash.bench import check

    machine = env.probe()
    if machine.device == "cuda":
        trains_like = targets.get(target) if target and target != "cpu" else machine.target
        dtype, shapes = getattr(torch, trains_like.dtypes[0]), check.GPU_SHAPES[:1]
    else:
        dtype, shapes = torch.float32, check.CPU_SHAPES[:1]
    names = list(dict.fromkeys([backend, "sdpa"]))
    return check.check_kernels(names, [dtype], shapes, machine=machine)


def with_overrides(parameters: dict, overrides: dict, target: str) -> dict:
    """`parameters` with dotted `overrides` ({"train.max_steps": 50}) applied and checked
    (`checked_params`), before any notebook runs: a key the parameters file does not have (or, under
    `train` or `benchmark`, no field of that section) is refused by name, and so is a value of the
    wrong type."""
    from vanilla_flash.config import TrainConfig

    known = {"train": set(TrainConfig.__dataclass_fields__), "benchmark": set(BenchmarkParams.__dataclass_fields__)}
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = parameters
        for name in parents:
            if not isinstance(section.get(name), dict):
                raise ConfigError(
                    f"--set {dotted}: {target}.yaml has no section {name!r}; its keys: {', '.join(parameters)}"
                )
            section = section[name]
        allowed = known.get(".".join(parents), set(section))
        if key not in allowed:
            raise ConfigError(f"--set {dotted}: no such parameter; choose from: {', '.join(sorted(allowed))}")
        section[key] = value
    return checked_params(parameters)


def _local_kernel():
    """Kernels that talk to papermill over local sockets (IPC), not TCP: nothing leaves the machine,
    and the kernel has no reason to warn that its TCP traffic is unencrypted."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc"}})


def run(
    target: str = "auto",
    out_dir: str | os.PathLike | None = None,
    sets: list[str] | None = None,
    notebooks: list[str | os.PathLike] | None = None,
    overrides: dict | None = None,
) -> list[tuple[Path, str | None]]:
    """Execute notebooks headlessly with papermill and notebooks/params/<target>.yaml.

    `overrides` maps dotted keys to values (``{"train.data_source": "sample"}``: a T4 file on a
    machine without network). Each executed notebook is written to `out_dir` (default
    outputs/<target>/), also when a cell fails; returns (executed notebook, error or None) for
    each. Every notebook runs even after a failure, so one broken cell does not hide the others.
    """
    import papermill

    root = repo_root()
    chosen = env.probe().target if target == "auto" else targets.get(target)
    target = chosen.name
    parameters = with_overrides(params(target), overrides or {}, target)
    out = Path(out_dir) if out_dir else root / "outputs" / target
    if notebooks is None:
        sets = sets or targets.sets_to_run(chosen)
        notebooks = [nb for s in sets for nb in sorted((root / "notebooks" / s).glob("*.ipynb"))]
    results = []
    for src in map(Path, notebooks):
        dst = out / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        print(f"--- {src} -> {dst} ({target})", flush=True)
        try:
            papermill.execute_notebook(
                str(src),
                str(dst),
                parameters=parameters,
                kernel_name="python3",
                log_output=True,
                cwd=str(root),
                progress_bar=False,
                config=_local_kernel(),
            )
            results.append((dst, None))
        except papermill.PapermillExecutionError as err:
            results.append((dst, f"{err.ename}: {err.evalue}"))
            print(f"FAILED {src}: {err.ename}: {err.evalue} (executed notebook kept: {dst})", flush=True)
    return results
