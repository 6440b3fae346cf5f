"""The package's import structure: no cycles; numpy kernels know nothing of dask or xarray."""

import ast
from pathlib import Path

import pytest

import trackoff_xr

PACKAGE = Path(trackoff_xr.__file__).parent
FORBIDDEN_IN_KERNELS = ("dask", "distributed", "xarray", "tensorflow", "keras", "rioxarray")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, int]]:
    """Modules ``name`` imports (anywhere in the file, functions included), with line numbers."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    return {name: {t for t, _ in _imports(name) if t in MODULES and t != name} for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_the_package():
    graph = _graph()
    assert "trackoff_xr.kernels.match" in graph["trackoff_xr.matchers"]
    assert "trackoff_xr.schema" in graph["trackoff_xr.postprocess.filters"]


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if ".kernels" in n))
def test_kernels_import_no_dask_xarray_or_tensorflow(name):
    bad = [
        (target, line)
        for target, line in _imports(name)
        if target.split(".")[0] in FORBIDDEN_IN_KERNELS
    ]
    assert bad == [], f"{name} imports {bad}"
