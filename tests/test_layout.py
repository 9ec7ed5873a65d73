"""The shape of the package: imports flow one way, the compute-capability rule exists once, every
module says what it is for and stays small, and the index pages list what is there."""

import ast
import re
from pathlib import Path

import vanilla_flash
from vanilla_flash import cli

PACKAGE = Path(vanilla_flash.__file__).parent
# every module, dotted from the package ("attention.registry", "errors"), subpackages' faces left out
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.stem not in ("__init__", "__main__")
)
PARTS = re.findall(r"^- `(\w+)/?`", vanilla_flash.__doc__, re.M)  # top modules and subpackages, in order


def part_of(module: str) -> str:
    return module.split(".")[0]


def source(module: str) -> str:
    return (PACKAGE / f"{module.replace('.', '/')}.py").read_text()


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source(module))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vanilla_flash"):
            base = node.module.removeprefix("vanilla_flash").lstrip(".")
            for alias in node.names:
                candidate = f"{base}.{alias.name}".lstrip(".")
                found.add(candidate if candidate in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("vanilla_flash.") for a in node.names if a.name.startswith("vanilla_flash.")}
    return {m for m in found if m in MODULES or m in PARTS}


def test_the_import_graph_has_no_cycle():
    graph = {m: imports_of(m) & set(MODULES) for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())


def test_the_parts_are_listed_in_an_order_their_imports_respect():
    """The package docstring lists every top module and subpackage in an order in which each imports
    only itself and earlier ones: no import runs back up the layers."""
    assert sorted(PARTS) == sorted({part_of(m) for m in MODULES})
    for module in MODULES:
        position = PARTS.index(part_of(module))
        later = {part_of(i) for i in imports_of(module)} & set(PARTS[position + 1 :])
        assert not later, f"{module} imports {later}, listed after {part_of(module)} in vanilla_flash/__init__.py"


def test_every_module_says_what_it_is_for_and_stays_small():
    for module in MODULES:
        text = source(module)
        assert ast.get_docstring(ast.parse(text)), f"{module} has no opening docstring"
        assert len(text.splitlines()) <= 450, f"{module} has {len(text.splitlines())} lines"
    for face in PACKAGE.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(face.read_text())), f"{face.parent.name}/ has no docstring"


def test_the_compute_capability_rule_is_written_once():
    """Only `targets` compares a compute capability with a number; the Makefile asks the package."""
    pattern = re.compile(r"\bcc\s*[<>]=?\s*\d|\d\.\d\s*[<>]=?\s*\w*cc\b")
    for module in MODULES:
        if module != "targets":
            hits = [line for line in source(module).splitlines() if pattern.search(line)]
            assert not hits, f"{module}.py decides by compute capability itself: {hits}"
    makefile = (PACKAGE.parents[1] / "Makefile").read_text()
    assert "compute_cap" not in makefile and "vanilla_flash target" in makefile


def test_the_command_line_docstring_lists_every_command():
    commands = set(cli.parser()._subparsers._group_actions[0].choices)
    documented = set(re.findall(r"^(\w+)\b", cli.__doc__.split("\n\n")[1], re.M))
    assert documented == commands


def test_the_tests_follow_the_layout():
    """Each subpackage's behaviour is tested in a folder of its own name under tests/."""
    tests = Path(__file__).parent
    for face in PACKAGE.glob("*/__init__.py"):
        assert list((tests / face.parent.name).glob("test_*.py")), f"no tests/{face.parent.name}/test_*.py"


def test_the_training_config_is_a_leaf():
    """`TrainConfig` reads and checks a run's parameters without the rest of the package (the backend
    name is checked by the registry), so reading a config loads no model, backend or trainer."""
    assert imports_of("config") <= {"errors"}


EXPERIMENTS = PACKAGE.parents[1] / "experiments"


def test_each_experiment_has_a_readme_and_is_listed_in_the_index():
    index = (EXPERIMENTS / "README.md").read_text()
    folders = sorted(p.name for p in EXPERIMENTS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders, "no experiments found"
    for name in folders:
        readme = EXPERIMENTS / name / "README.md"
        assert readme.exists(), f"experiments/{name} has no README.md"
        assert f"]({name}/README.md)" in index, f"experiments/README.md does not list {name}"


def test_experiments_call_only_the_packages_public_names():
    """An experiment is a use of the package: it imports no private name of it (`_name`) and reads no
    private attribute of a module it imported from it."""
    for path in sorted(EXPERIMENTS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        modules = set()  # the names bound to the package's modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vanilla_flash"):
                for alias in node.names:
                    assert not alias.name.startswith("_"), f"{path.name} imports {node.module}.{alias.name}"
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules |= {a.asname or a.name for a in node.names if a.name.startswith("vanilla_flash")}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                assert not node.attr.startswith("_"), (
                    f"{path.relative_to(EXPERIMENTS)} reads {node.value.id}.{node.attr}"
                )


def test_no_script_hides_a_module_of_the_standard_library_or_an_installed_package():
    """A script run by path (`python3 experiments/speed/X.py`) puts its folder first on sys.path, so a file there
    named as a standard-library module or an installed package is imported in its place by anything, torch
    included (seen: experiments/speed/profile.py taken for `profile` by torch._dynamo's cProfile; a
    `kernels.py` taken for the Hub's `kernels` package by transformers)."""
    import importlib.metadata
    import sys

    root = PACKAGE.parents[1]
    scripts = [p for folder in ("experiments", "tools", "docs", "notebooks") for p in (root / folder).rglob("*.py")]
    taken = set(sys.stdlib_module_names) | set(importlib.metadata.packages_distributions())
    assert scripts and "profile" in taken and "torch" in taken
    hiding = [str(p.relative_to(root)) for p in scripts if p.stem in taken]
    assert not hiding, f"named as modules Python or an installed package already has: {hiding}"
