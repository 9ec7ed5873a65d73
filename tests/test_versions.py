"""Version strings are read one way, as pip reads them, local labels and all."""

from vanilla_flash import versions


def test_parts_and_comparisons_of_the_versions_this_project_meets():
    assert versions.major("2.8.3+hd64.sm90") == 2 and versions.major("1.0.9") == 1
    assert versions.major_minor("2.11.0+cu130") == "2.11" and versions.major_minor("3.12.3") == "3.12"
    assert versions.major_minor("13") == "13.0"
    assert versions.at_least("2.13.0+cpu", "2.13") and not versions.at_least("2.12.1", "2.13")
    assert versions.at_least("2.14.0.dev20261201", "2.13")
    assert versions.major(None) is None and versions.major_minor("") == ""
