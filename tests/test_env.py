import json
import os

from vanilla_flash import cli, env


def test_probe_on_this_machine():
    machine = env.probe()
    assert machine.torch and machine.python
    if machine.device == "cpu":
        assert machine.cc == 0.0 and machine.label == "CPU"


def test_colab_libcuda_fix_sets_the_variable_once(monkeypatch, tmp_path):
    (tmp_path / "libcuda.so").touch()
    monkeypatch.setattr(env, "COLAB_DRIVER_DIR", tmp_path)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20261120")
    monkeypatch.delenv("TRITON_LIBCUDA_PATH", raising=False)
    done = env.fix_colab_libcuda()
    assert done and "TRITON_LIBCUDA_PATH" in done
    assert os.environ["TRITON_LIBCUDA_PATH"] == str(tmp_path)
    assert env.fix_colab_libcuda() is None  # once


def test_no_fix_outside_colab(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("TRITON_LIBCUDA_PATH", raising=False)
    assert env.fix_colab_libcuda() is None
    assert "TRITON_LIBCUDA_PATH" not in os.environ


def test_env_command_prints_json(capsys):
    assert cli.main(["env", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"machine", "backends", "auto_pick", "notes"}
    assert report["backends"]["eager"] is None


def test_check_command_writes_results(tmp_path, capsys):
    out = tmp_path / "backends.json"
    assert cli.main(["check", "--quick", "--backends", "sdpa,sdpa_math,flash_attn_1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["ok"] and result["environment"]["machine"]["torch"]
    assert {r["backend"] for r in result["kernels"]} == {"sdpa", "sdpa_math", "flash_attn_1"}
    assert "all checks passed" in capsys.readouterr().out


def test_smoke_command_trains_a_tiny_step(capsys):
    assert cli.main(["smoke", "--steps", "3"]) == 0
    assert "attention auto -> sdpa" in capsys.readouterr().out
