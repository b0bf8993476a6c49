"""The house's shape, from the package's own imports (function-local ones included): no circle between
modules, and every arrow points down the layers (data -> models -> train -> inference -> evaluate,
serve and pipeline above them, the command line on top); nothing in ``mammolibs`` reaches out to the
repository's outer folders."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

CORE = {"mammolibs", "mammolibs.logs", "mammolibs.pictures", "mammolibs.storage"}
MAY_USE = {  # room -> the rooms below it that it may import
    "core": set(),
    "data": {"core"},
    "models": {"core", "data"},
    "train": {"core", "data", "models"},
    "inference": {"core", "data", "models", "train"},
    "evaluate": {"core", "data", "models", "train", "inference"},
    "serve": {"core", "data", "inference"},
    "pipeline": {"core", "data", "models", "train", "inference", "evaluate"},
    "cli": {"core", "data", "models", "train", "inference", "evaluate", "serve", "pipeline"},
}
OUTER = ("components", "pipelines", "train", "benchmarks", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module of ``mammolibs`` (or outer folder) that ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return {m for m in found if m.split(".")[0] in ("mammolibs", *OUTER)}


def room(module: str) -> str:
    if module in CORE or module == "mammolibs.__main__":
        return "cli" if module.endswith("__main__") else "core"
    return module.split(".")[1]


def graph() -> dict[str, set[str]]:
    paths = sorted((REPO / "mammolibs").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in paths}


def test_every_module_of_the_package_sits_in_a_room():
    assert {room(m) for m in graph()} == set(MAY_USE)


def test_no_module_reaches_out_to_the_outer_folders():
    outward = {(m, t) for m, targets in graph().items() for t in targets if not t.startswith("mammolibs")}
    assert not outward, f"mammolibs imports outer folders: {sorted(outward)}"


def test_every_arrow_points_down_the_layers():
    upward = {
        (m, t)
        for m, targets in graph().items()
        for t in targets
        if room(t) != room(m) and room(t) not in MAY_USE[room(m)]
    }
    assert not upward, f"imports against the layers: {sorted(upward)}"


def test_no_circle_between_modules():
    edges = graph()
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the path, 2 done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state[target] == 1:
                circles.append(path[path.index(target) :] + [target])
            elif state[target] == 0 and target in edges:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if state[module] == 0:
            visit(module, [module])
    assert not circles, f"import circles: {circles}"


def test_the_checks_see_what_they_are_meant_to_catch():
    """The graph holds the imports inside functions too (the ones a circle hides behind)."""
    edges = graph()
    assert "mammolibs.inference.chain" in edges["mammolibs.serve.app"]
    assert "mammolibs.train.engine" in edges["mammolibs.train.cli"]  # imported inside main()
    assert room("mammolibs.evaluate.metrics") == "evaluate" and "evaluate" not in MAY_USE["serve"]
