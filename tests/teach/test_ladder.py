"""The kernel ladder's sources on a CPU (the GPU builds and times them: experiments/kernel_ladder)."""

import re

import pytest
from vanilla_flash.builds import inline
from vanilla_flash.teach import ladder


def test_each_rung_is_one_file_and_says_what_it_changed():
    assert len(set(ladder.NAMES)) == len(ladder.RUNGS) >= 6
    for index, rung in enumerate(ladder.RUNGS):
        text = ladder.source(rung.name)
        assert text.startswith(f"// Rung {index}: "), rung.file  # the idea, in the file's first line
        assert '#include "common.cuh"' in text and "std::vector<torch::Tensor> forward(" in text
        diff = ladder.changes(rung.name)
        assert diff == text if index == 0 else diff.startswith(f"--- {ladder.RUNGS[index - 1].file}")
    with pytest.raises(ValueError, match="no rung 'warp'; the ladder: scalar, warp_tiles"):
        ladder.source("warp")


def test_every_rung_uses_only_instructions_a_t4_has():
    """sm_75 has mma.sync.m16n8k8 and ldmatrix; not cp.async (sm_80), m16n8k16 (sm_80) or wgmma (sm_90)."""
    for name in [*ladder.NAMES, *(r.name for r in ladder.BACKWARD_RUNGS)]:
        text = ladder.source(name) + (inline.KERNELS / "common.cuh").read_text()
        text = re.sub(r"//.*", "", text)  # the code, not what its comments say of other GPUs
        assert not re.search(r"cp\.async|m16n8k16|wgmma|__nv_bfloat16|__CUDA_ARCH__", text), name


def test_one_module_holds_every_rung_in_a_namespace_of_its_own():
    cuda, cpp, bound = inline.module_source({r.name: r.file for r in ladder.RUNGS})
    assert bound == [f"{r.name}_forward" for r in ladder.RUNGS]
    for rung in ladder.RUNGS:
        assert f'namespace {rung.name} {{\n#include "{rung.file}"\n}}' in cuda
        assert f"std::vector<torch::Tensor> {rung.name}_forward(" in cpp
    assert inline.gencode("compute_75") == "-gencode=arch=compute_75,code=compute_75"
    assert inline.gencode("90") == "-gencode=arch=compute_90,code=sm_90"


def test_the_from_scratch_backend_is_the_ladders_last_rung():
    from vanilla_flash.attention import from_scratch

    assert ladder.RUNGS[-1].file == from_scratch.KERNEL_FILE
