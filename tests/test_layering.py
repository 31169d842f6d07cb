"""The package's shape (README, Layout): one-way layering checked by an import scan of every
module, function-level imports included.

    errors, _version, _keras, utils  <-  models, data, runtime  <-  converters, train
                                     <-  jobs  <-  cli
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "edgecnn"
LIBRARY = ("models", "converters", "runtime", "data", "train")
#: package -> packages it must never import
FORBIDDEN = {
    "models": ("converters", "runtime", "train", "data", "jobs", "cli"),
    "runtime": ("models", "converters", "train", "jobs", "cli"),
    "data": ("models", "converters", "runtime", "train", "jobs", "cli"),
    "utils": ("models", "converters", "runtime", "train", "data", "jobs", "cli"),
    "converters": ("train", "jobs", "cli"),
    "train": ("converters", "jobs", "cli"),
    "jobs": ("cli",),
}


def _module_name(path: pathlib.Path) -> str:
    parts = ("edgecnn",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """edgecnn modules ``name`` imports anywhere in its file (a package's ``from . import x``
    of a submodule counts as importing the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = subs or [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_arrow_against_the_layering(package):
    wrong = sorted(f"{m} -> {t}" for m, targets in _graph().items() if _package(m) == package
                   for t in targets if _package(t) in FORBIDDEN[package])
    assert wrong == []


def test_nothing_imports_the_cli():
    wrong = sorted(f"{m} -> {t}" for m, targets in _graph().items()
                   if _package(m) not in ("cli", "__main__")
                   for t in targets if _package(t) == "cli")
    assert wrong == []


def test_package_root_holds_at_most_five_modules():
    assert len(list(ROOT.glob("*.py"))) <= 5, sorted(p.name for p in ROOT.glob("*.py"))
