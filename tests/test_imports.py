"""The package's import graph points one way: no module imports another inside a function (the
usual way to hide a cycle), and the graph of lifelong modules has no cycle.

Imports of third-party packages inside functions are allowed (ray, fastapi, river and matplotlib
are optional or slow, and loaded only by the code that needs them); imports under
``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lifelong

ROOT = Path(lifelong.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _targets(node: ast.AST, current: str, is_package: bool) -> list[str]:
    """The lifelong modules an import statement loads (the module, and the submodules it names)."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = current.split(".") if is_package else current.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        out = [mod] + [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
    return [m for m in out if m == "lifelong" or m.startswith("lifelong.")]


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def scan(name: str, path: Path) -> tuple[set[str], list[str]]:
    """(modules imported at module level, descriptions of imports inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    nested: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                targets = _targets(child, name, is_package)
                if in_function and targets:
                    nested.append(f"{path.relative_to(ROOT.parent)}:{child.lineno} imports {targets[0]}")
                elif not in_function:
                    top.update(targets)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, nested


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        top, _ = scan(name, path)
        deps: set[str] = set()
        for t in top:
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            parts = t.split(".")
            deps.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        deps.discard(name)
        # a module's own parent packages are already running when it is imported: not an edge
        deps -= {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges[name] = {d for d in deps if d in MODULES}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := dfs(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state and (c := dfs(u)):
            return c
    return None


def test_no_lifelong_import_inside_a_function():
    nested = [n for name, path in MODULES.items() for n in scan(name, path)[1]]
    assert nested == [], "imports placed inside functions (move them to the top, or fix the layering):\n" + "\n".join(nested)


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_importing_the_scenarios_does_not_load_learners_or_river():
    code = ("import sys, lifelong.data.scenarios; "
            "print(sorted(m for m in sys.modules if m.startswith(('lifelong.learn', 'river'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
