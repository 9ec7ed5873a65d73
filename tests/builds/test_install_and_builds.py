"""What each GPU needs, flash-attn 2's wheel name, and the flash-attn 1.x build set-up."""

import ast
import dataclasses
import os
from pathlib import Path

import pytest
from conftest import A100, CPU, H100, T4
from vanilla_flash.builds import edits, fused, install, sources

ROOT = Path(__file__).resolve().parents[2]

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
    assert edits.restrict_archs(setup, keep) == left
    if keep == ["compute_75"]:  # PTX only: the driver compiles it for the GPU it meets
        assert "arch=compute_75,code=compute_75" in setup.read_text() and "code=sm_" not in setup.read_text()
    ast.parse(setup.read_text())  # still valid Python (an emptied `if` gets a `pass`)


def test_max_jobs_is_bounded_by_ram():
    assert sources.max_jobs(cores=2, ram_gib=12) == 2  # Colab
    assert sources.max_jobs(cores=16, ram_gib=32) == 8  # RAM-bound
    assert sources.max_jobs(cores=16, ram_gib=2) == 1


def test_build_dry_run_and_cache(tmp_path, capsys):
    result = sources.build_fa1(tmp_path, archs=["75"], dry_run=True)
    assert result.dry_run and result.wheel is None
    assert "MAX_JOBS=" in capsys.readouterr().out
    folder = tmp_path / install.build_tag()
    folder.mkdir()
    (folder / "flash_attn-1.0.9+hd64.sm75-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    again = sources.build_fa1(tmp_path, archs=["75"], head_dims=[64], dry_run=True)
    assert again.cached and again.wheel.name.startswith("flash_attn-1.0.9+hd64.sm75")
    other = sources.build_fa1(tmp_path, archs=["75"], dry_run=True)  # every head dim: another build
    assert not other.cached and other.dry_run


def test_building_without_cuda_says_so(tmp_path, monkeypatch):
    import torch.utils.cpp_extension

    monkeypatch.setattr(sources, "ninja_ok", lambda: True)
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", None)
    with pytest.raises(install.BuildError, match="no CUDA toolkit"):
        sources.build_fa1(tmp_path / "cache", work_dir=tmp_path / "work")


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
    monkeypatch.setattr(sources, "_run_logged", lambda cmd, log, env, echo: 1)  # no compiler here
    with pytest.raises(install.BuildError, match="rotary_emb build failed"):
        fused.build_extension("rotary_emb", tmp_path / "fa1", tmp_path / "cache", archs=["75"],
                                    work_dir=tmp_path / "work")  # fmt: skip
    setup = (tmp_path / "work" / "rotary_emb" / "setup.py").read_text()
    ast.parse(setup)
    assert "rotary_cuda.cu" in setup and "_old.cu" not in setup
    assert "arch=compute_75,code=sm_75" in setup and "sm_80" not in setup
    with pytest.raises(install.BuildError, match="unknown extension"):
        fused.build_extension("layer_norm_v2", tmp_path, tmp_path)


def test_extension_plan_and_dry_run(tmp_path, capsys):
    plan = fused.extension_plan(["xentropy_cuda_lib"])
    assert "build  xentropy_cuda_lib" in plan and "skip   dropout_layer_norm" in plan and "Triton" in plan
    assert "none asked for" in fused.extension_plan([])
    result = fused.build_extension("dropout_layer_norm", None, tmp_path, archs=["75"], dry_run=True)
    assert result.dry_run and "sm_75" in capsys.readouterr().out


def test_a_build_of_just_what_gpt2_needs_stands_in_for_the_rest(tmp_path):
    """Head dim 64 only, no block-sparse kernels: 2 of the 8 CUDA files; the left-out kernels are
    defined by a stub that stops a call with the way to rebuild (no undefined symbol at import)."""
    import shutil

    source = Path(os.environ.get("FA1_SOURCE", ROOT / ".venv/src/flash-attn-1.0.9"))
    if not (source / "setup.py").exists():
        pytest.skip("flash-attn 1.0.9's source is not here (make test fetches it)")
    shutil.copytree(source, tmp_path / "fa1")
    left = edits.restrict_sources(tmp_path / "fa1/setup.py", [64])
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
    assert edits.kernels_for([48, 64]) == [64] and edits.kernels_for([16, 128]) == [32, 128]


def test_what_a_build_holds_decides_what_it_may_run():
    from conftest import H100, T4
    from vanilla_flash.attention import registry as attention
    from vanilla_flash.builds import labels

    assert labels.build_label(["75"], [64]) == "hd64.sm75" and labels.build_label(["compute_75"], None) == "ptx75"
    expected = {"major": 1, "head_dims": [64, 128], "sass": [75, 90], "ptx": [], "minimal": True}
    assert labels.build_of("1.0.9+hd64x128.sm75x90") == expected
    assert labels.build_of("1.0.9") is None  # unlabelled: built elsewhere, nothing known
    assert labels.build_of("1.0.9+sm75")["head_dims"] == [32, 64, 128] and not labels.build_of("1.0.9+sm75")["minimal"]
    turing_ptx = dataclasses.replace(H100, flash_attn="1.0.9+hd64.ptx75")
    assert "no bfloat16 kernels" in attention.why_not("flash_attn_1", turing_ptx, dtype="bfloat16", head_dim=64)
    assert attention.why_not("flash_attn_1", turing_ptx, dtype="float16", head_dim=64) is None
    assert "head-dim [64] kernels only" in attention.why_not("flash_attn_1", turing_ptx, dtype="float16", head_dim=128)
    assert "not sm90" in attention.why_not("flash_attn_1", dataclasses.replace(H100, flash_attn="1.0.9+sm75"))
    assert attention.why_not("flash_attn_1", dataclasses.replace(T4, flash_attn="1.0.9+hd64.sm75"),
                             dtype="float16", head_dim=64) is None  # fmt: skip


def test_a_flash_attn_2_build_holds_what_its_label_says():
    """2.8.3+hd64.sm90: head dim 64 (and head dims that round to it and are a multiple of 32: the
    uneven-head-dim code is left out), sm90 machine code only; sm80 code runs on an sm86 GPU."""
    from conftest import gpu
    from vanilla_flash.attention import registry as attention
    from vanilla_flash.builds import labels

    built = labels.build_of("2.8.3+hd64.sm90")
    assert built == {"major": 2, "head_dims": [64], "sass": [90], "ptx": [], "minimal": True}
    h100 = dataclasses.replace(H100, flash_attn="2.8.3+hd64.sm90")
    for dtype in ("bfloat16", "float16"):
        assert attention.why_not("flash_attn_2", h100, dtype=dtype, head_dim=64) is None
    assert "head-dim [64] kernels only" in attention.why_not("flash_attn_2", h100, dtype="bfloat16", head_dim=128)
    assert "fa2_head_dims including 128" in attention.why_not("flash_attn_2", h100, dtype="bfloat16", head_dim=128)
    assert "multiple of 32" in attention.why_not("flash_attn_2", h100, dtype="bfloat16", head_dim=48)
    assert "not sm80" in attention.why_not("flash_attn_2", dataclasses.replace(A100, flash_attn="2.8.3+hd64.sm90"))
    a10 = dataclasses.replace(gpu("NVIDIA A10", (8, 6)), flash_attn="2.8.3+hd64.sm80")
    assert attention.why_not("flash_attn_2", a10, dtype="bfloat16", head_dim=64) is None
    assert labels.runs_on(labels.build_of("2.8.3+sm80"), 90) == []  # sm80 machine code does not run on sm90
    assert attention.why_not("flash_attn_2", dataclasses.replace(H100, flash_attn="2.8.3"), head_dim=128) is None


def test_flash_attn_2_build_options():
    assert [edits.fa2_arch_for(cc) for cc in (8.0, 8.6, 8.9, 9.0, 12.0)] == ["80", "80", "80", "90", "120"]
    with pytest.raises(install.BuildError, match="no kernels for compute capability 7.5"):
        edits.fa2_arch_for(7.5)
    assert edits.kernels_for([64], major=2) == [64] and edits.kernels_for([40, 100], major=2) == [64, 128]
    assert [edits.cxx_standard(v) for v in ("2.11.0+cu130", "2.12.1", "2.13.0", "2.14.1+cu130")] == [
        "c++17", "c++17", "c++20", "c++20"]  # fmt: skip
    assert sources.ninja_progress("  [3/13] /usr/local/cuda/bin/nvcc -MD -c /x/src/flash_bwd_hdim64.cu -o /x/a.o") == (
        "[3/13] flash_bwd_hdim64.cu")  # fmt: skip
    assert sources.ninja_progress("copying flash_attn/__init__.py -> build [x]") is None


def test_flash_attn_2_build_dry_run_cache_and_bad_arch(tmp_path, capsys):
    result = sources.build_fa2(tmp_path, archs=["90"], head_dims=[64], dry_run=True)
    out = capsys.readouterr().out
    assert result.dry_run and "sm_90" in out and "head dims [64] without alibi" in out
    folder = tmp_path / install.build_tag()
    folder.mkdir()
    (folder / "flash_attn-2.8.3+hd64.sm90-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert sources.build_fa2(tmp_path, archs=["90"], head_dims=[64]).cached
    assert not sources.build_fa2(tmp_path, archs=["80"], head_dims=[64], dry_run=True).cached
    with pytest.raises(install.BuildError, match="ask for 80"):
        sources.build_fa2(tmp_path, archs=["86"], head_dims=[64])


def _fa2_source(tmp_path) -> Path:
    """The parts of flash-attn 2.8.3's real source that a restricted build edits, copied."""
    import shutil

    source = Path(os.environ.get("FA2_SOURCE", ROOT / ".venv/src/flash-attn-2.8.3"))
    if not (source / "setup.py").exists():
        pytest.skip("flash-attn 2.8.3's source is not here (make test fetches it)")
    shutil.copy(source / "setup.py", tmp_path / "setup.py")
    shutil.copytree(source / "csrc/flash_attn", tmp_path / "csrc/flash_attn")
    return tmp_path


def test_a_flash_attn_2_build_of_just_what_gpt2_needs(tmp_path):
    """12 of the 72 kernel files (head dim 64: forward, split-KV forward, backward; fp16 and bf16;
    causal or not), flash-attn's own switches off for what GPT-2 does not use, dropout kept."""
    src = _fa2_source(tmp_path)
    every = edits.cuda_files(src / "setup.py")
    left = edits.restrict_fa2_sources(src, [64])
    assert len(every) == 72 and len(left) == 12 and all("_hdim64_" in f for f in left)
    assert all((src / "csrc/flash_attn/src" / f).exists() for f in left)
    setup = (src / "setup.py").read_text()
    ast.parse(setup)
    host = next(line for line in setup.splitlines() if line.startswith("    compiler_c17_flag="))
    for feature in edits.FA2_LEFT_OUT:  # for nvcc (the kernels) and the C++ compiler (flash_api.cpp's checks)
        assert f'\n    "-DFLASHATTENTION_DISABLE_{feature}",' in setup and f"-DFLASHATTENTION_DISABLE_{feature}" in host
    assert '# "-DFLASHATTENTION_DISABLE_DROPOUT",' in setup and '# "-DFLASHATTENTION_DISABLE_BACKWARD",' in setup
    assert (
        edits.set_cxx_standard(src / "setup.py", "c++20") == "c++20" and "c++17" not in (src / "setup.py").read_text()
    )


def test_the_rewritten_head_dim_switch_runs_what_was_built_and_refuses_the_rest(tmp_path):
    """flash-attn 2's real static_switch.h, rewritten for head dim 64, compiled with the host C++
    compiler and run: 64 (and 40, which rounds up to it) dispatch to the 64 kernel; 32 and 128 stop
    with the build's message, which names the way to rebuild."""
    import shutil
    import subprocess

    compiler = shutil.which("g++") or shutil.which("c++")
    if not compiler:
        pytest.skip("no C++ compiler here")
    src = _fa2_source(tmp_path)
    edits.restrict_fa2_sources(src, [64])
    program = tmp_path / "switch.cpp"
    program.write_text("""
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#define TORCH_CHECK(cond, message) if (!(cond)) throw std::runtime_error(message)
#include "static_switch.h"
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int d = std::atoi(argv[i]), ran = -1;
    try { HEADDIM_SWITCH(d, [&] { ran = kHeadDim; }); std::printf("%d -> %d\\n", d, ran); }
    catch (const std::exception &e) { std::printf("%d -> %s\\n", d, e.what()); }
  }
}
""")
    binary = tmp_path / "switch"
    subprocess.run([compiler, "-std=c++17", "-I", str(src / "csrc/flash_attn/src"), str(program), "-o", str(binary)],
                   check=True)  # fmt: skip
    lines = subprocess.run([binary, "64", "40", "32", "128"], capture_output=True, text=True, check=True).stdout
    lines = lines.splitlines()
    assert lines[:2] == ["64 -> 64", "40 -> 64"]
    assert "has no head dim 32 kernels" in lines[2] and "fa2_head_dims including 128" in lines[3]


def test_a_community_wheel_is_taken_only_with_its_pinned_checksum(tmp_path, monkeypatch):
    import hashlib

    wheel = tmp_path / "flash_attn-2.8.3+cu12torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    wheel.write_bytes(b"a wheel")
    good = hashlib.sha256(b"a wheel").hexdigest()
    entry = install.CommunityWheel(wheel.as_uri(), good, "2.11", "12", "3.12", True, "a test")
    monkeypatch.setattr(install, "FA2_COMMUNITY", (entry,))
    colab_a100 = dataclasses.replace(A100, torch="2.11.0+cu128", cuda="12.8", python="3.12.13", cxx11_abi=True)
    path = install.fa2_path(colab_a100)
    assert (path.kind, path.sha256, path.wheel) == ("wheel", good, wheel.name) and "community" in path.why
    fetched = install.download_verified(path.url, path.sha256, tmp_path / "cache")
    assert fetched.read_bytes() == b"a wheel"
    with pytest.raises(install.BuildError, match="refused"):
        install.download_verified(path.url, "0" * 64, tmp_path / "other")
    assert not any((tmp_path / "other").iterdir())  # nothing kept
    assert install.fa2_path(dataclasses.replace(colab_a100, python="3.13.1")).kind == "build"


def test_a_cached_flash_attn_2_build_is_installed_instead_of_rebuilt(tmp_path, monkeypatch):
    installed = []
    machine = dataclasses.replace(H100, torch="2.11.0+cu130", cuda="13.0", python="3.12.3")
    folder = tmp_path / install.build_tag(machine)
    folder.mkdir()
    (folder / "flash_attn-2.8.3+hd64.sm80-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    monkeypatch.setattr(install, "install_cached", lambda wheel, echo=print: installed.append(wheel.name))
    from vanilla_flash import env

    monkeypatch.setattr(env, "probe", lambda: machine)
    plan = install.plan(machine, "ampere")
    assert "not installed yet" in install.ensure(plan, cache_dir=tmp_path)  # an sm80 build does not run on sm90
    (folder / "flash_attn-2.8.3+hd64.sm90-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    assert "cached flash_attn-2.8.3+hd64.sm90" in install.ensure(plan, cache_dir=tmp_path)
    assert installed == ["flash_attn-2.8.3+hd64.sm90-cp312-cp312-linux_x86_64.whl"]
