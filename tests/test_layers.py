"""The package's layers: every import points down (or within its own package).

The order is the README's (section "Architecture"); this test reads it from there, so the
picture and the code cannot drift apart. Imports inside functions count too: a lazy import
that points up is still a dependency that points up.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bilstm_cli"


def readme_layers() -> list[list[str]]:
    """The layers, bottom first, from the README's ``layers (bottom first): a | b, c | ...`` line."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^Layers, bottom first: (.+)$", text, re.MULTILINE)
    assert match, "README.md lost its 'Layers, bottom first:' line (section Architecture)"
    return [[name.strip(" `.") for name in layer.split(",")] for layer in match.group(1).split("<")]


def top_level(module: Path) -> str:
    """``bilstm_cli/engine/loop.py`` -> ``engine``; ``bilstm_cli/cli.py`` -> ``cli``."""
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(module: Path) -> set[str]:
    """The top-level units of bilstm_cli that ``module`` imports (at any depth of its code)."""
    tree = ast.parse(module.read_text())
    parts = module.relative_to(ROOT).with_suffix("").parts  # ("bilstm_cli", "engine", "loop")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[: len(parts) - node.level])
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("bilstm_cli"):
                target = node.module.split(".")
            else:
                continue
            if len(target) > 1:
                found.add(target[1])
            else:  # `from .. import backend, __version__`
                found.update(alias.name for alias in node.names if not alias.name.startswith("__"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bilstm_cli."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_unit_is_in_one_layer():
    layers = readme_layers()
    listed = [name for layer in layers for name in layer]
    assert len(listed) == len(set(listed)), listed
    units = {top_level(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units == set(listed), f"not in the README's layers: {units - set(listed)}; gone: {set(listed) - units}"


def test_imports_point_down_the_layers():
    rank = {name: index for index, layer in enumerate(readme_layers()) for name in layer}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = top_level(path)
        if unit == "__init__":
            continue
        for imported in imported_units(path) - {unit}:
            if imported in rank and rank[imported] >= rank[unit]:
                upward.append(f"{path.relative_to(ROOT)} ({unit}) imports {imported}")
    assert not upward, "imports that point up (or sideways) the layers:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser resolves relative imports, so a lazy upward import cannot hide."""
    module = PACKAGE / "data" / "_probe_upward.py"
    module.write_text("def f():\n    from ..engine import loop\n    from .. import backend\n")
    try:
        assert imported_units(module) == {"engine", "backend"}
    finally:
        module.unlink()
