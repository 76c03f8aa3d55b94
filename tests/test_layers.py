"""The tree keeps its shape: imports point down the layers, and no modules import each
other in a circle (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

# models ← ingest ← index ← qa ← app / evaluation; kbqa/ (errors, settings, text, files)
# is shared by every layer.
LAYERS = {"models": 0, "ingest": 1, "index": 2, "qa": 3, "app": 4, "evaluation": 4}


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for top in ["kbqa", *LAYERS]:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            parts = parts if parts[0] == "kbqa" else ["kbqa", *parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            trees[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


def _imports(name: str, tree: ast.Module, module_level: bool) -> set[str]:
    """The kbqa modules ``name`` imports (with ``module_level``, only those imported when it
    is: not inside functions, not under ``if TYPE_CHECKING``)."""
    package = name if _is_package(name) else name.rsplit(".", 1)[0]
    nodes = _top_level(tree.body) if module_level else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{target}.{alias.name}" for alias in node.names]
            elif node.module and node.module.startswith("kbqa"):
                target, names = node.module, [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found.add(target)
            found.update(names)  # `from . import evaluation` imports a module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kbqa"))
    return found


_PACKAGES: set[str] = set()


def _is_package(name: str) -> bool:
    return name in _PACKAGES


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    nodes: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.Try):
            nodes += _top_level(node.body) + _top_level(getattr(node, "orelse", []))
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            nodes.append(node)
    return nodes


def _graph(module_level: bool) -> dict[str, set[str]]:
    trees = _modules()
    _PACKAGES.update(
        name for name in trees if (ROOT / "/".join(name.split(".")[1:]) / "__init__.py").exists()
    )
    _PACKAGES.add("kbqa")
    return {
        name: {t for t in _imports(name, tree, module_level) if t in trees and t != name}
        for name, tree in trees.items()
    }


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in _graph(module_level=False).items()
        for target in targets
        if name.count(".") and target.count(".")
        and (layer := LAYERS.get(name.split(".")[1])) is not None
        and (other := LAYERS.get(target.split(".")[1])) is not None
        and (other > layer or (other == layer and name.split(".")[1] != target.split(".")[1]
                               and name.split(".")[1] != "app"))
    ]  # fmt: skip
    assert upward == []


def test_the_engine_imports_no_front_door() -> None:
    graph = _graph(module_level=False)
    reached = [t for n, ts in graph.items() if n.startswith("kbqa.qa") for t in ts]
    assert not [t for t in reached if t.startswith(("kbqa.app", "kbqa.evaluation"))]
    assert "kbqa.app.cli" not in graph["kbqa.app.mcp"]  # `kbqa mcp` is given its settings
    assert "kbqa.app.batch_ray" not in graph["kbqa.app.batch"]  # the CLI passes the answerer


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = _graph(module_level=True)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_every_package_folder_is_installed() -> None:
    assert all((ROOT / folder / "__init__.py").exists() for folder in LAYERS)
    assert Path(ROOT / "app" / "web" / "main.py").exists()
