"""The arrows of docs/architecture.md, read from the source: no import cycle, API and page
modules never import each other, schemas never reach an API module, a service or the
database. What the restructuring of issue 17 has not moved yet is listed below by name; a
new violation fails, and so does a listed one that is gone (the lists only shrink)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cellchain"

#: Import cycles not yet broken, each as its sorted modules (imports under
#: ``if TYPE_CHECKING:`` are for annotations only and do not count).
KNOWN_CYCLES: set[tuple[str, ...]] = set()
#: (importer, imported) pairs where a page module imports an API module or back.
KNOWN_VIEW_API_IMPORTS: set[tuple[str, str]] = set()
#: (schema module, what it imports) pairs that reach an API module, a service or the database.
KNOWN_SCHEMA_REACHES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


@cache
def imports_of(name: str) -> frozenset[str]:
    """The cellchain modules ``name`` imports, at the top or inside a function."""
    known = modules()
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(known[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "cellchain":
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cellchain")
    return frozenset(found & known.keys())


def cycles() -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in imports_of(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for name in sorted(modules()):
        if name not in index:
            visit(name)
    return found


def kind(name: str) -> str:
    """What a module is by its name: views, api, schemas, or other."""
    last = name.rsplit(".", 1)[-1]
    if last == "views" or last.endswith("_views"):
        return "views"
    if last == "api" or last.endswith("_api"):
        return "api"
    if last == "schemas" or last.endswith("_schemas"):
        return "schemas"
    return "other"


def test_the_modules_are_found():
    assert {"cellchain.core.models", "cellchain.dosing.orders", "cellchain.wiring"} <= set(
        modules()
    )
    assert "cellchain.core.models" in imports_of("cellchain.dosing.orders")


def test_no_new_import_cycle():
    unexpected = []
    known_seen = set()
    for component in cycles():
        key = tuple(sorted(component))
        if key in KNOWN_CYCLES:
            known_seen.add(key)
        else:
            unexpected.append(sorted(component))
    assert unexpected == [], "new import cycles (docs/architecture.md)"
    assert known_seen == KNOWN_CYCLES, "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_pages_and_api_never_import_each_other():
    found = {
        (name, imported)
        for name in modules()
        if kind(name) in {"views", "api"}
        for imported in imports_of(name)
        if kind(imported) in {"views", "api"} and kind(imported) != kind(name)
    }
    assert found == KNOWN_VIEW_API_IMPORTS


def test_schemas_reach_no_api_service_or_database():
    def forbidden(imported: str) -> bool:
        last = imported.rsplit(".", 1)[-1]
        return (
            kind(imported) in {"api", "views"}
            or imported == "cellchain.extensions"
            or last in {"service", "commands"}
        )

    found = {
        (name, imported)
        for name in modules()
        if kind(name) == "schemas"
        for imported in imports_of(name)
        if forbidden(imported)
    }
    assert found == KNOWN_SCHEMA_REACHES
