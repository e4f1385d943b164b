"""The package reads top-down: no module imports, directly or through others, one that imports it."""

import ast

from conftest import REPO

PACKAGE = REPO / "src" / "resdeg"


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every resdeg module and the resdeg modules it imports anywhere, inside functions too."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from resdeg import devices` imports a module; `from resdeg import ResdegError` the root
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("resdeg"):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_package_has_no_import_circle():
    graph = import_graph()
    # The root defines the errors every module imports, and registers the config resolvers on
    # import (Hydra's parallel workers must have them before a config resolves); that one edge is
    # the root's own, not part of any module's reading order.
    graph["resdeg"].discard("resdeg.resolvers")
    assert circles(graph) == []


def test_the_walk_sees_imports_inside_functions():
    graph = import_graph()
    assert "resdeg.training.signals" in graph["resdeg.build"]  # imported inside run_callbacks
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
