"""The package's import rules (docs/ARCHITECTURE.md): no module imports another's private name, and the modules'
top-level imports form no cycle. Read from the source with ast, so a new violation fails here by name."""

from __future__ import annotations

import ast
from pathlib import Path

import statelab

PACKAGE = Path(statelab.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("statelab", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, bool]]:
    """(imported module, imported name, at the top level) for each ``from ... import`` of statelab."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "statelab":
            continue
        for alias in node.names:
            full = f"{target}.{alias.name}"
            out.append((full if full in modules else target, alias.name, node in tree.body))
    return out


def test_no_module_imports_another_modules_private_name():
    modules = _modules()
    private = [f"{module} imports {name} from {target}" for module, path in modules.items()
               for target, name, _ in _imports(module, path, modules)
               if name.startswith("_") and not name.startswith("__") and target != module]
    assert private == []


def test_the_packages_top_level_imports_form_no_cycle():
    modules = _modules()
    graph = {module: {t for t, _, top in _imports(module, path, modules) if top and t in modules and t != module}
             for module, path in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(stack[stack.index(other):] + [other])
            elif not state.get(other):
                visit(other, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module, [])
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


TESTS = Path(__file__).resolve().parents[1]


def _imported_roots(path: Path) -> set[str]:
    """The top-level names every ``import`` and ``from ... import`` of ``path`` reaches (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_test_imports_the_benchmarks():
    """A benchmark is a script that measures, free to change its numbers and its output; what a test needs of one
    lives in the package or in a helper beside the tests (the hub class: ``classroom/rehearsal.py``)."""
    importing = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if "benchmarks" in _imported_roots(p))
    assert importing == []
