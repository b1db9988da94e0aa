"""The package's layers, as STYLE.md draws them: imports flow one way and never in a circle.

Read from the source with `ast` (every import statement, inside functions too), so a lazy import
that goes the wrong way counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trellis_ts"

# What each part of the package may import (besides itself and the standard library).
ALLOWED = {
    "ops": {"errors"},
    "modules": {"ops", "errors"},
    "layers": {"ops", "modules", "errors"},
    "models": {"ops", "modules", "layers", "errors"},
    "data": {"errors"},
    "metrics": {"data", "errors"},
    "plotting": {"data", "errors"},
    "forecaster": {"ops", "modules", "layers", "models", "data", "metrics", "plotting", "errors"},
}
ALLOWED["tuning"] = ALLOWED["forecaster"] | {"forecaster"}
ALLOWED["benchmark"] = ALLOWED["tuning"]
ALLOWED["integrations"] = ALLOWED["tuning"]
ALLOWED["cli"] = ALLOWED["tuning"] | {"tuning", "benchmark"}
LEAVES = {"errors", "_version"}  # the package's root leaves: anyone may import them
HEAVY_OPTIONALS = {"typer", "optuna", "gluonts", "rich"}
BELOW_THE_PRODUCT = {"ops", "modules", "layers", "models", "data", "metrics", "forecaster"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts `a.b` when `b` is a
    module of the package, else `a`)."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(f) for f in FILES}
GRAPH = {module_name(f): {m for m in imports(f) if m in MODULES} for f in FILES}


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_import_circle():
    # Tarjan's strongly connected components: any with two or more modules is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
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
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == []


def test_imports_flow_one_way_through_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        here = part(module)
        if here not in ALLOWED:
            continue  # the package's root (__init__, _moved, __main__): it may name anything
        for target in targets:
            there = part(target)
            if there and there != here and there not in ALLOWED[here] | LEAVES:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_nothing_below_the_product_imports_the_command_line_or_tuning_libraries():
    wrong = []
    for f in FILES:
        module = module_name(f)
        if part(module) in BELOW_THE_PRODUCT:
            heavy = {m.split(".")[0] for m in imports(f)} & HEAVY_OPTIONALS
            wrong += [f"{module} -> {h}" for h in sorted(heavy)]
    assert wrong == []


def test_the_graph_is_read():
    # The checks above mean something only if the imports were found.
    assert "trellis_ts.forecaster.backtest" in GRAPH["trellis_ts.forecaster.estimator"]
    assert "trellis_ts.models.encoder" in GRAPH["trellis_ts.models.build"]
    assert "trellis_ts.layers.trellis" in GRAPH["trellis_ts.layers"]
