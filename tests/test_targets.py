"""The targets table: which target a GPU belongs to, and that every place reads the same table."""

from pathlib import Path

import pytest
import yaml
from conftest import A10, A100, CPU, H100, L4, T4, gpu
from vanilla_flash import cli, targets
from vanilla_flash.builds import install
from vanilla_flash.errors import ConfigError
from vanilla_flash.training import precision

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("cc", "name"),
    [(None, "cpu"), (0.0, "cpu"), (7.0, "t4"), (7.5, "t4"), (8.0, "ampere"), (8.6, "ampere"), (8.9, "ampere"),
     (9.0, "hopper"), (10.0, "hopper"), (12.0, "hopper")],
)  # fmt: skip
def test_a_compute_capability_has_one_target(cc, name):
    assert targets.for_capability(cc).name == name


def test_machines_know_their_target():
    assert [m.target.name for m in (CPU, T4, A100, A10, L4, H100)] == ["cpu", "t4", "ampere", "ampere", "ampere",
                                                                        "hopper"]  # fmt: skip


def test_the_table_drives_precision_install_and_sets():
    for machine in (CPU, T4, A100, H100):
        t = machine.target
        assert precision.policy(machine) == t.precision
        assert install.plan(machine).target == t.name
        if t is not targets.CPU:
            assert install.plan(machine).backend == t.backend == f"flash_attn_{t.flash_attn_major}"
            assert targets.for_set(t.notebook_set) is t and targets.for_flash_attn(t.flash_attn_major) is t
    volta = gpu("Tesla V100", (7, 0))
    assert volta.target is targets.T4 and install.plan(volta).target == "unsupported"


def test_every_parameters_file_names_its_target():
    for t in targets.TARGETS.values():
        values = yaml.safe_load((ROOT / t.params).read_text())
        assert values["target"] == t.name


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="cpu, t4, ampere, hopper"):
        targets.get("tpu")
    with pytest.raises(ConfigError, match="flash_attn_1"):
        targets.for_set("flash_attn_3")


def test_target_command(capsys):
    assert cli.main(["target"]) == 0 and capsys.readouterr().out.strip() in targets.TARGETS
    assert cli.main(["target", "t4", "--field", "requirements"]) == 0
    assert capsys.readouterr().out.strip() == "requirements-t4.txt"


def test_bad_input_prints_the_message_and_exits_2(capsys, tmp_path):
    assert cli.main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no config file at") and "Traceback" not in err
    assert cli.main(["target", "tpu"]) == 2 and "unknown target" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        cli.main(["--debug", "target", "tpu"])
