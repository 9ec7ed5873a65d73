"""flash-attn 1.x's fused CUDA extensions (fused dense, cross-entropy, rotary, LayerNorm), which
flash-attn's own GPT model can use: what each does (`extension_plan`, `extension_note`) and
`build_extension()`, which builds one from flash-attn 1.0.9's source archive with a build script
written here (the archive carries their sources but not their scripts), timed and cached like the
main wheel (`vanilla_flash.builds.sources`).
"""

from __future__ import annotations

import os
from pathlib import Path

from vanilla_flash.builds.install import cached_wheel
from vanilla_flash.builds.sources import BuildResult, max_jobs, pip_wheel, unpack_source
from vanilla_flash.errors import BuildError

# flash-attn 1.x's optional CUDA extensions: module name -> (folder in the source tree, extra libraries).
# The PyPI archive carries their sources but not their build scripts; `build_extension` writes one.
EXTENSIONS = {
    "fused_dense_lib": ("csrc/fused_dense_lib", ["cublasLt"]),
    "xentropy_cuda_lib": ("csrc/xentropy", []),
    "rotary_emb": ("csrc/rotary", []),
    "dropout_layer_norm": ("csrc/layer_norm", []),
}
_NVCC_FLAGS = [
    "-O3",
    "--use_fast_math",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_HALF2_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
]
_SETUP_TEMPLATE = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name={name!r},
    version="1.0.9",
    ext_modules=[CUDAExtension({name!r}, {sources!r}, include_dirs=[{folder!r}], libraries={libraries!r},
                               extra_compile_args={{"cxx": ["-O3"], "nvcc": {nvcc!r}}})],
    cmdclass={{"build_ext": BuildExtension}},
)
"""


EXTENSION_NOTES = {
    "fused_dense_lib": "linear layers with bias and GELU through cuBLASLt (fused_bias_fc, fused_mlp); still a CUDA "
    "extension in flash-attn 2.x, and still optional",
    "xentropy_cuda_lib": "the cross-entropy loss; flash-attn 2.x has it in Triton (ops/triton/cross_entropy.py)",
    "rotary_emb": "rotary position embeddings (GPT-2 does not use them); Triton in 2.x (ops/triton/rotary.py)",
    "dropout_layer_norm": "dropout + residual add + LayerNorm, about sixty CUDA files; Triton in 2.x "
    "(ops/triton/layer_norm.py)",
}


def extension_plan(names: list[str] | None = None) -> str:
    """What each of flash-attn 1.x's fused extensions does, and which of them would be built."""
    names = names or []
    lines = [f"{'build' if n in names else 'skip '}  {n:<19} {EXTENSION_NOTES[n]}" for n in EXTENSIONS]
    if not names:
        lines.append('(none asked for: set fa1_extensions, e.g. ["fused_dense_lib", "xentropy_cuda_lib"])')
    return "\n".join(lines)


def build_extension(
    name: str,
    source: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    *,
    archs: list[str] | None = None,
    jobs: int | None = None,
    work_dir: str | os.PathLike = "build/flash-attn-1-extensions",
    dry_run: bool = False,
    echo=print,
) -> BuildResult:
    """Build one of flash-attn 1.x's fused extensions (see `EXTENSIONS`) from flash-attn 1.0.9's
    source (an unpacked folder, the .tar.gz, or None: download it) into a wheel in
    `cache_dir/<build tag>/`, timed, with its log; reuse a cached one."""
    if name not in EXTENSIONS:
        raise BuildError(f"unknown extension {name!r}; choose from {', '.join(EXTENSIONS)}")
    work = Path(work_dir) / name
    log_path = work / "build.log"
    hit = cached_wheel(cache_dir, package=name)
    if hit:
        echo(f"cached wheel: {hit}")
        return BuildResult(hit, 0.0, log_path, cached=True)
    folder, libraries = EXTENSIONS[name]
    if dry_run:
        arch_list = ", sm_".join(archs or ["75", "80", "90"])
        echo(f"plan: {name} from {folder}, sm_{arch_list}, MAX_JOBS={jobs or max_jobs()}; dry run: nothing built")
        return BuildResult(None, 0.0, log_path, dry_run=True)
    if source is None or not Path(source).is_dir():
        source = unpack_source(source, Path(work_dir), echo)
    src = (Path(source) / folder).resolve()
    # `*_old.cu` are earlier kernels kept in the tree that upstream's setup.py does not compile (they
    # no longer match the headers); building them fails, so they are left out the same way
    sources = sorted(str(p) for p in [*src.glob("*.cpp"), *src.glob("*.cu")] if not p.stem.endswith("_old"))
    if not sources:
        raise BuildError(f"no sources in {src}: pass the unpacked flash-attn 1.0.9 source folder")
    archs = archs or ["75", "80", "90"]
    nvcc = _NVCC_FLAGS + [f for a in archs for f in ("-gencode", f"arch=compute_{a},code=sm_{a}")]
    work.mkdir(parents=True, exist_ok=True)
    (work / "setup.py").write_text(
        _SETUP_TEMPLATE.format(name=name, sources=sources, folder=str(src), libraries=libraries, nvcc=nvcc)
    )
    jobs = jobs or max_jobs()
    echo(f"building {name}: {len(sources)} files from {folder}, sm_{', sm_'.join(archs)}, MAX_JOBS={jobs}")
    return pip_wheel(work, cache_dir, name, name, jobs, log_path, echo)


def extension_note() -> str:
    return (
        "flash-attn's own GPT model can use four extra CUDA extensions (fused_dense_lib, xentropy, rotary, "
        "layer_norm). They are not built here: the Hugging Face GPT-2 this project trains needs none of them, "
        "later flash-attn versions replaced them with Triton kernels, and layer_norm alone is about sixty CUDA "
        "files: on Colab's 2 cores a student's session once ended before its build did."
    )
