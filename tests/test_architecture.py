"""The engine never imports Qt, pyqtgraph or the viewer (static and at run time)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph", "qtpy", "superqt", "viewer")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_sources_import_no_qt_or_viewer():
    offenders = []
    files = sorted((ROOT / "engine").rglob("*.py"))
    assert len(files) > 10, "engine package not found"
    for path in files:
        for name in _imported_modules(path):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_detector_catches_a_qt_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom PySide6.QtCore import QObject\n")
    assert "PySide6.QtCore" in _imported_modules(bad)


def test_importing_every_engine_module_loads_no_qt():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "engine").rglob("*.py")
        if p.name != "__main__.py"  # importing it runs the CLI
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, check=True)
    assert out.stdout.strip() == ""


# -- the shape of the house -------------------------------------------------------------
#: Rank of each part of the engine: a module may import only parts of a lower rank or
#: its own part. Parts of equal rank (editing, evaluation) never import each other.
LAYERS = {
    "core": 0,
    "io": 1,
    "display": 1,
    "surfaces": 1,
    "data": 2,
    "pacs": 2,
    "models": 3,
    "methods": 4,
    "editing": 5,
    "evaluation": 5,
    "lesions": 5,
    "reports": 6,
    "batch": 6,
    "cli": 7,
}
MAX_LOOSE_MODULES = 6


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph(top: str) -> dict[str, set[str]]:
    """module -> the modules of *top* it imports (function-level imports included)."""
    paths = {_module_name(p): p for p in (ROOT / top).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # "from pkg import module" imports the module itself
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in paths else source
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_circle_detector_finds_a_loop():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("top", ["engine", "viewer"])
def test_no_import_circles(top):
    assert _circles(_import_graph(top)) == []


def test_engine_parts_import_only_downwards():
    graph = _import_graph("engine")
    parts = {_part(m) for m in graph if m != "engine"}
    unranked = sorted(p for p in parts if p not in LAYERS)
    assert unranked == [], "give every part of engine/ a rank in LAYERS"
    upward = []
    for module, targets in graph.items():
        here = _part(module)
        for target in targets:
            there = _part(target)
            if not here or not there or here == there:
                continue
            if LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_engine_parts_form_no_circle():
    """Folders as rooms: no two parts of the engine import each other, even indirectly."""
    graph = _import_graph("engine")
    by_part: dict[str, set[str]] = {}
    for module, targets in graph.items():
        by_part.setdefault(_part(module), set()).update(_part(t) for t in targets)
    for part, targets in by_part.items():
        targets.discard(part)
    assert _circles(by_part) == []


def test_few_modules_stay_loose_at_the_top_of_engine():
    loose = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose
