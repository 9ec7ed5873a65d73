#!/usr/bin/env bash
# Gather, on a machine with network, what a GPU machine without network needs to run this project:
#   experiments/gpu_machine/prepare_offline.sh DIR [PYTHON_VERSION]     (default 3.12)
# DIR/fa1.tar.gz     flash-attn 1.0.9's source archive, unpacked and re-packed (its cutlass included)
# DIR/fa2.tar.gz     flash-attn 2.8.3's, without what a CUDA build does not read (AMD's composable_kernel,
#                    the Hopper-only FA3 tree, tests, cutlass's examples and tools): 2.6 MB instead of 100
# DIR/fa4a, DIR/fa4b flash-attn-4 and its CuTe DSL wheels, split so that each folder stays under 60 MiB
#                    (the 92 MB nvidia-cutlass-dsl-libs-cu13 wheel is cut in two; fa4a/fa4.md5 checks it)
# DIR/ds             datasets and the pure-Python packages it needs beyond a torch image
# DIR/nb             papermill and the Jupyter kernel (ipykernel, ipython, ...) to run the notebooks
# On the GPU machine: experiments/gpu_machine/driver.sh and experiments/gpu_machine/install_fa4.sh.
set -euo pipefail
out=$1 py=${2:-3.12}
mkdir -p "$out"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64)
wheels() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
             "${platforms[@]}" -d "$@"; }

# flash-attn 1.0.9: PyPI has only the source archive (scripts/fetch_flash_attn_source.sh unpacks it)
tmp=$(mktemp -d)
scripts/fetch_flash_attn_source.sh 1.0.9 "$tmp"
mv "$tmp/flash-attn-1.0.9" "$tmp/fa1" && tar czf "$out/fa1.tar.gz" -C "$tmp" fa1 && rm -rf "$tmp/fa1"

scripts/fetch_flash_attn_source.sh 2.8.3 "$tmp"
tar czf "$out/fa2.tar.gz" -C "$tmp" --exclude='*/csrc/composable_kernel' --exclude='*/csrc/flash_attn_ck' \
  --exclude='*/hopper' --exclude='*/tests' --exclude='*/csrc/cutlass/'{examples,test,tools,media,docs,python} \
  flash-attn-2.8.3 && rm -rf "$tmp"

# flash-attn 4 (CuTe DSL): wheels only; install with --no-deps (nvidia-cutlass-dsl names the cu12 libs)
all=$(mktemp -d)
wheels "$all" flash-attn-4==4.0.0b36 nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1 \
  nvidia-cutlass-dsl-libs-core==4.8.1 nvidia-cutlass-dsl-libs-cu13==4.8.1 'apache-tvm-ffi<0.2' \
  torch-c-dlpack-ext quack-kernels einops protobuf
mkdir -p "$out/fa4a" "$out/fa4b"
big=$(ls "$all"/nvidia_cutlass_dsl_libs_cu13-*.whl)
(cd "$all" && md5sum "$(basename "$big")" > "$out/fa4a/fa4.md5")
split -b 45M "$big" "$big.part" && rm "$big"
mv "$all"/*.partaa "$all"/apache_tvm_ffi-* "$all"/nvidia_cutlass_dsl_libs_base-* "$all"/nvidia_cutlass_dsl_libs_core-* "$out/fa4a/"
mv "$all"/* "$out/fa4b/" && rmdir "$all"

# datasets for the training runs (pyarrow, pandas, tokenizers are in the GPU image seen so far)
mkdir -p "$out/ds"
wheels "$out/ds" datasets==5.2.0 'dill<0.4.2' 'multiprocess<0.70.20' xxhash 'fsspec<=2026.9.0' \
  'huggingface-hub>=1.31,<2' hf-xet httpx httpcore h11 anyio
# papermill and a Jupyter kernel, for `python -m vanilla_flash notebooks` (none of them is in the image)
mkdir -p "$out/nb"
wheels "$out/nb" papermill==2.7.0 nbformat nbclient jupyter-client jupyter-core ipykernel ipython traitlets \
  pyzmq tornado comm debugpy matplotlib-inline nest-asyncio2 entrypoints tenacity fastjsonschema jsonschema \
  jsonschema-specifications referencing rpds-py platformdirs jedi parso pexpect ptyprocess prompt-toolkit \
  wcwidth stack-data executing asttokens pure-eval ipython-pygments-lexers
du -sh "$out"/*
