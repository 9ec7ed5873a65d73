"""The shape of the package: imports flow one way, the compute-capability rule exists once, every
module says what it is for and stays small, and the index pages list what is there."""

import ast
import re
from pathlib import Path

import vanilla_flash
from vanilla_flash import cli

PACKAGE = Path(vanilla_flash.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vanilla_flash"):
            if node.module == "vanilla_flash":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vanilla_flash.")}
    return found & set(MODULES)


def test_the_import_graph_has_no_cycle():
    graph = {m: imports_of(m) for m in MODULES}
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


def test_modules_are_listed_in_an_order_their_imports_respect():
    """The package docstring lists every module in an order in which each imports only earlier ones."""
    listed = re.findall(r"^- `(\w+)`", vanilla_flash.__doc__, re.M)
    assert sorted(listed) == MODULES
    for position, module in enumerate(listed):
        later = imports_of(module) & set(listed[position:])
        assert not later, f"{module} imports {later}, listed after it in vanilla_flash/__init__.py"


def test_every_module_says_what_it_is_for_and_stays_small():
    for module in MODULES:
        source = (PACKAGE / f"{module}.py").read_text()
        assert ast.get_docstring(ast.parse(source)), f"{module}.py has no opening docstring"
        assert len(source.splitlines()) <= 450, f"{module}.py has {len(source.splitlines())} lines"


def test_the_compute_capability_rule_is_written_once():
    """Only `targets` compares a compute capability with a number; the Makefile asks the package."""
    pattern = re.compile(r"\bcc\s*[<>]=?\s*\d|\d\.\d\s*[<>]=?\s*\w*cc\b")
    for module in MODULES:
        if module != "targets":
            hits = [line for line in (PACKAGE / f"{module}.py").read_text().splitlines() if pattern.search(line)]
            assert not hits, f"{module}.py decides by compute capability itself: {hits}"
    makefile = (PACKAGE.parents[1] / "Makefile").read_text()
    assert "compute_cap" not in makefile and "vanilla_flash target" in makefile


def test_the_command_line_docstring_lists_every_command():
    commands = set(cli.parser()._subparsers._group_actions[0].choices)
    documented = set(re.findall(r"^(\w+)\b", cli.__doc__.split("\n\n")[1], re.M))
    assert documented == commands
