"""What each GPU needs, flash-attn 2's wheel name, and the flash-attn 1.x build set-up."""

import ast
import dataclasses
import os
from pathlib import Path

import pytest
from conftest import A100, CPU, H100, T4
from vanilla_flash import builds, install

ROOT = Path(__file__).resolve().parents[1]

SETUP_PY = """
cc_flag = []
_, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
cc_flag.append("-gencode")
cc_flag.append("arch=compute_75,code=sm_75")
cc_flag.append("-gencode")
cc_flag.append("arch=compute_80,code=sm_80")
if bare_metal_version >= Version("11.8"):
    cc_flag.append("-gencode")
    cc_flag.append("arch=compute_90,code=sm_90")
"""


def test_plan_per_gpu():
    assert install.plan(CPU).target == "cpu" and install.plan(CPU).package is None
    t4 = install.plan(T4)
    assert (t4.target, t4.backend, t4.archs) == ("t4", "flash_attn_1", ["75"])
    assert "source" in t4.package and "sm_75" in str(t4)
    a100 = install.plan(A100)  # torch 2.11: no flash-attn 2 release has a wheel for it
    assert a100.backend == "flash_attn_2" and "(build)" in a100.package and "no flash-attn 2 release" in str(a100)
    assert install.plan(H100).backend == "flash_attn_4"
    # a set's target asks for its own library, also on a newer GPU (the T4 notebooks on an H100)
    assert install.plan(H100, "t4").backend == "flash_attn_1" and install.plan(H100, "t4").archs == ["90"]
    assert install.plan(T4, "hopper").target == "unsupported" and "9.0" in install.plan(T4, "hopper").notes[0]
    assert install.plan(CPU, "hopper").target == "cpu"


def test_flash_attn_2_comes_from_a_wheel_that_exists_or_is_said_to_need_a_build():
    """The published wheels are the release workflows' matrix (`FA2_PUBLISHED`): torch 2.8 with
    CUDA 12 has one; Colab's A100 (torch 2.11+cu128, Python 3.12) has none, and the plan says so
    instead of naming a file that does not exist."""
    torch28 = dataclasses.replace(A100, torch="2.8.0+cu128", cuda="12.8", python="3.12.13", cxx11_abi=True)
    path = install.fa2_path(torch28)
    assert (
        path.kind == "wheel"
        and path.wheel == "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert path.url.endswith("/v2.8.3.post1/" + path.wheel)
    colab_a100 = dataclasses.replace(A100, torch="2.11.0+cu128", cuda="12.8", python="3.12.13", colab=True)
    path = install.fa2_path(colab_a100)
    assert path.kind == "build" and path.url is None and "torch 2.11" in path.why and "2.4-2.8" in path.why
    for old in ("2.4.0", "3.13"), ("2.9.0", "3.12"):
        assert install.fa2_path(dataclasses.replace(A100, torch=old[0], cuda="12.4", python=old[1])).kind == "build"
    installed = dataclasses.replace(A100, flash_attn="2.8.3")
    assert install.fa2_path(installed).kind == "installed"


def test_fa2_wheel_name_encodes_cuda_torch_abi_python():
    name = install.fa2_wheel(torch_version="2.8.0+cu128", cuda="12.8", cxx11_abi=True, python="3.12.1")
    assert name == "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    assert install.fa2_wheel_url(name).endswith(f"/v2.8.3/{name}")
    from_machine = install.fa2_wheel(A100, cxx11_abi=False)
    assert "+cu13torch2.11cxx11abiFALSE" in from_machine


@pytest.mark.parametrize(
    ("keep", "left"),
    [(["75"], ["75"]), (["90"], ["90"]), (["75", "80"], ["75", "80"]), (["compute_75"], ["compute_75"])],
)
def test_restrict_archs_keeps_only_the_gpus_asked_for(tmp_path, keep, left):
    setup = tmp_path / "setup.py"
    setup.write_text(SETUP_PY)
    assert builds.restrict_archs(setup, keep) == left
    if keep == ["compute_75"]:  # PTX only: the driver compiles it for the GPU it meets
        assert "arch=compute_75,code=compute_75" in setup.read_text() and "code=sm_" not in setup.read_text()
    ast.parse(setup.read_text())  # still valid Python (an emptied `if` gets a `pass`)


def test_max_jobs_is_bounded_by_ram():
    assert builds.max_jobs(cores=2, ram_gib=12) == 2  # Colab
    assert builds.max_jobs(cores=16, ram_gib=32) == 8  # RAM-bound
    assert builds.max_jobs(cores=16, ram_gib=2) == 1


def test_build_dry_run_and_cache(tmp_path, capsys):
    result = builds.build_fa1(tmp_path, archs=["75"], dry_run=True)
    assert result.dry_run and result.wheel is None
    assert "MAX_JOBS=" in capsys.readouterr().out
    folder = tmp_path / install.build_tag()
    folder.mkdir()
    (folder / "flash_attn-1.0.9+hd64.sm75-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    again = builds.build_fa1(tmp_path, archs=["75"], head_dims=[64], dry_run=True)
    assert again.cached and again.wheel.name.startswith("flash_attn-1.0.9+hd64.sm75")
    other = builds.build_fa1(tmp_path, archs=["75"], dry_run=True)  # every head dim: another build
    assert not other.cached and other.dry_run


def test_building_without_cuda_says_so(tmp_path, monkeypatch):
    import torch.utils.cpp_extension

    monkeypatch.setattr(builds, "ninja_ok", lambda: True)
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", None)
    with pytest.raises(install.BuildError, match="no CUDA toolkit"):
        builds.build_fa1(tmp_path / "cache", work_dir=tmp_path / "work")


def test_ensure_on_cpu_installs_nothing():
    assert "nothing to install" in install.ensure(install.plan(CPU))


def test_extension_build_script_lists_the_sources(tmp_path, monkeypatch):
    """The PyPI archive has the extensions' sources but no build script: ours is written from the
    folder's files, with the architectures asked for."""
    folder = tmp_path / "fa1" / "csrc" / "rotary"
    folder.mkdir(parents=True)
    (folder / "rotary.cpp").write_text("")
    (folder / "rotary_cuda.cu").write_text("")
    (folder / "rotary_cuda_old.cu").write_text("")  # kept upstream but not compiled there: it no longer compiles
    monkeypatch.setattr(builds, "_run_logged", lambda cmd, log, env, echo: 1)  # no compiler here
    with pytest.raises(install.BuildError, match="rotary_emb build failed"):
        builds.build_fa1_extension("rotary_emb", tmp_path / "fa1", tmp_path / "cache", archs=["75"],
                                    work_dir=tmp_path / "work")  # fmt: skip
    setup = (tmp_path / "work" / "rotary_emb" / "setup.py").read_text()
    ast.parse(setup)
    assert "rotary_cuda.cu" in setup and "_old.cu" not in setup
    assert "arch=compute_75,code=sm_75" in setup and "sm_80" not in setup
    with pytest.raises(install.BuildError, match="unknown extension"):
        builds.build_fa1_extension("layer_norm_v2", tmp_path, tmp_path)


def test_extension_plan_and_dry_run(tmp_path, capsys):
    plan = builds.extension_plan(["xentropy_cuda_lib"])
    assert "build  xentropy_cuda_lib" in plan and "skip   dropout_layer_norm" in plan and "Triton" in plan
    assert "none asked for" in builds.extension_plan([])
    result = builds.build_fa1_extension("dropout_layer_norm", None, tmp_path, archs=["75"], dry_run=True)
    assert result.dry_run and "sm_75" in capsys.readouterr().out


def test_a_build_of_just_what_gpt2_needs_stands_in_for_the_rest(tmp_path):
    """Head dim 64 only, no block-sparse kernels: 2 of the 8 CUDA files; the left-out kernels are
    defined by a stub that stops a call with the way to rebuild (no undefined symbol at import)."""
    import shutil

    source = Path(os.environ.get("FA1_SOURCE", ROOT / ".venv/src/flash-attn-1.0.9"))
    if not (source / "setup.py").exists():
        pytest.skip("flash-attn 1.0.9's source is not here (make test fetches it)")
    shutil.copytree(source, tmp_path / "fa1")
    left = builds.restrict_sources(tmp_path / "fa1/setup.py", [64])
    assert left == ["fmha_fwd_hdim64.cu", "fmha_bwd_hdim64.cu"]
    setup = (tmp_path / "fa1/setup.py").read_text()
    ast.parse(setup)
    assert "vf_left_out.cpp" in setup and "hdim128" not in setup and "block" not in setup
    stub = (tmp_path / "fa1/csrc/flash_attn/src/vf_left_out.cpp").read_text()
    header = (tmp_path / "fa1/csrc/flash_attn/src/fmha.h").read_text()
    for name in ("run_fmha_fwd_hdim32", "run_fmha_bwd_hdim128", "run_fmha_block_fp16_sm80",
                 "run_fmha_block_dgrad_fp16_sm80"):  # fmt: skip
        signature = next(line for line in stub.splitlines() if f" {name}(" in line).split(" {")[0]
        assert signature + ";" in header, f"the stub's {name} does not match fmha.h"
    assert builds.fa1_kernels_for([48, 64]) == [64] and builds.fa1_kernels_for([16, 128]) == [32, 128]


def test_what_a_build_holds_decides_what_it_may_run():
    from conftest import H100, T4
    from vanilla_flash import attention
    from vanilla_flash import flash_attn_backends as fab

    assert fab.fa1_label(["75"], [64]) == "hd64.sm75" and fab.fa1_label(["compute_75"], None) == "ptx75"
    assert fab.fa1_build("1.0.9+hd64x128.sm75x90") == {"head_dims": [64, 128], "sass": [75, 90], "ptx": []}
    assert fab.fa1_build("1.0.9") is None  # unlabelled: built elsewhere, nothing known
    turing_ptx = dataclasses.replace(H100, flash_attn="1.0.9+hd64.ptx75")
    assert "no bfloat16 kernels" in attention.why_not("flash_attn_1", turing_ptx, dtype="bfloat16", head_dim=64)
    assert attention.why_not("flash_attn_1", turing_ptx, dtype="float16", head_dim=64) is None
    assert "head-dim [64] kernels only" in attention.why_not("flash_attn_1", turing_ptx, dtype="float16", head_dim=128)
    assert "not sm90" in attention.why_not("flash_attn_1", dataclasses.replace(H100, flash_attn="1.0.9+sm75"))
    assert attention.why_not("flash_attn_1", dataclasses.replace(T4, flash_attn="1.0.9+hd64.sm75"),
                             dtype="float16", head_dim=64) is None  # fmt: skip
