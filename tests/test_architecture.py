"""The arrows point one way: no import cycles, channels/ never imports warning_service, no imports hidden in functions.

The graph is read from the source with `ast` (nothing is imported), so a cycle is caught even when the
modules involved would import fine today thanks to ordering luck. Run it alone with
`python -m tests.test_architecture` to print the graph's cycles and function-level imports.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("warning_service", "channels")
# Alembic loads these by path; they are not part of the import graph.
SKIP = ("warning_service/migrations/",)

# Cycles that are known and owned elsewhere; each entry is the set of modules in the cycle.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}

# Imports inside function bodies that stay, each with its reason. Key: (module, imported module). The
# stale-entry check below fails once such an import is gone, so an entry is removed with it.
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (resolved: `from a import b` is a.b when a/b.py exists, else a)
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(s) for s in SKIP):
                continue
            out[module_name(path)] = path
    return out


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno, in_function)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve_from(module, is_package, child)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    yield Import(module, sub if sub in known else base, child.lineno, in_function)
            else:
                fn = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, in_function or fn)

    yield from walk(tree, False)


def all_imports() -> list[Import]:
    mods = project_modules()
    known = set(mods)
    return [imp for name, path in mods.items() for imp in imports_of(name, path, known)]


def _ancestors(target: str, known: set[str]) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ too: those are edges of the graph as well."""
    parts = target.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known]


def import_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Module → project modules it imports, wherever the import sits.

    An import inside a function or under `if TYPE_CHECKING` is an edge too: either hides a cycle from
    Python's loader, not from the design (the two modules still cannot be understood one without the other).
    """
    known = set(project_modules())
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports:
        for target in _ancestors(imp.target, known):
            if target != imp.module and not imp.module.startswith(target + "."):
                graph[imp.module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as one example cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, comp) for comp in components]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A concrete path a → … → a inside the component, for the failure message."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def forbidden_cycles() -> list[list[str]]:
    return [c for c in cycles(import_graph(all_imports())) if frozenset(c) not in ALLOWED_CYCLES]


def function_level_imports() -> list[Import]:
    return [i for i in all_imports() if i.in_function and (i.module, i.target) not in ALLOWED_FUNCTION_IMPORTS]


# -- the checks -------------------------------------------------------------------------------------------


def test_the_import_graph_has_no_cycles() -> None:
    found = forbidden_cycles()
    assert not found, "import cycles:\n" + "\n".join("  " + " → ".join(c) for c in found)


def test_channels_never_import_warning_service() -> None:
    bad = [i for i in all_imports() if i.module.split(".")[0] == "channels"
           and i.target.split(".")[0] == "warning_service"]
    assert not bad, "channels/ must stay independent of warning_service:\n" + "\n".join(
        f"  {i.module}:{i.line} imports {i.target}" for i in bad)


def test_imports_sit_at_module_top() -> None:
    bad = function_level_imports()
    assert not bad, "imports inside functions (move them to the top, or allow-list one with its reason):\n" + \
        "\n".join(f"  {i.module}:{i.line} imports {i.target}" for i in bad)


def test_allow_lists_name_only_what_still_exists() -> None:
    """An entry that no longer matches anything is stale and would silently allow the next offender."""
    imports = all_imports()
    graph_cycles = {frozenset(c) for c in cycles(import_graph(imports))}
    stale_cycles = [sorted(c) for c in ALLOWED_CYCLES if c not in graph_cycles]
    present = {(i.module, i.target) for i in imports if i.in_function}
    stale_imports = [k for k in ALLOWED_FUNCTION_IMPORTS if k not in present]
    assert not stale_cycles and not stale_imports, (stale_cycles, stale_imports)


def test_the_checker_finds_a_cycle_through_from_imports(tmp_path: Path) -> None:
    """The checker itself: `from pkg import mod` and relative imports count as edges to the module."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("from pkg.a import thing\n\ndef f():\n    import os\n")
    # A cycle closed only under TYPE_CHECKING is still a cycle.
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.e import E\n")
    (pkg / "e.py").write_text("from pkg import d\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e"}
    imports = [imp for name in "abcde" for imp in imports_of(f"pkg.{name}", pkg / f"{name}.py", known)]
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports:
        if imp.target in known:
            graph[imp.module].add(imp.target)
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]
    assert [(i.module, i.target) for i in imports if i.in_function] == [("pkg.c", "os")]


if __name__ == "__main__":
    for c in forbidden_cycles():
        print("cycle:", " → ".join(c))
    for i in function_level_imports():
        print(f"function-level import: {i.module}:{i.line} {i.target}")
