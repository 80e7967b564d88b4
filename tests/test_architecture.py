"""The arrows of docs/architecture.md, read from the source: no import cycle; API and page
modules never import each other; commands never import an interface; rule modules
(services) never import an interface or a command; schemas never reach an API module, a
service or the database. Every one of them held when issue 17 closed: a new violation fails."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cellchain"


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
    """What a module is by its name: views, api, schemas, commands, pages, or other."""
    last = name.rsplit(".", 1)[-1]
    if last in {"commands", "pages"}:
        return last
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


def test_no_import_cycle():
    assert [sorted(component) for component in cycles()] == [], (
        "import cycles (docs/architecture.md)"
    )


def test_pages_and_api_never_import_each_other():
    found = {
        (name, imported)
        for name in modules()
        if kind(name) in {"views", "api"}
        for imported in imports_of(name)
        if kind(imported) in {"views", "api"} and kind(imported) != kind(name)
    }
    assert found == set()


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
    assert found == set()


#: The interfaces and the shell: they may import commands, pages and each other's helpers.
SHELL = ("cellchain.web", "cellchain.wiring", "cellchain.cli")


def test_commands_never_import_an_interface():
    found = {
        (name, imported)
        for name in modules()
        if kind(name) == "commands"
        for imported in imports_of(name)
        if kind(imported) in {"views", "api", "pages"}
    }
    assert found == set()


def test_rule_modules_never_import_an_interface_or_a_command():
    found = {
        (name, imported)
        for name in modules()
        if kind(name) == "other" and name != "cellchain" and not name.startswith(SHELL)
        for imported in imports_of(name)
        if kind(imported) in {"views", "api", "pages", "commands"}
    }
    assert found == set()


def test_each_template_folder_is_a_package_or_sub_package():
    """templates/<package>/<sub>/ mirrors cellchain/<package>/<sub>/ (docs/architecture.md)."""
    templates = PACKAGE.parent / "templates"
    folders = {path.relative_to(templates) for path in templates.rglob("*") if path.is_dir()}
    assert folders, "no template folders found"
    assert {
        str(folder) for folder in folders if not (PACKAGE / folder / "__init__.py").is_file()
    } == set()
