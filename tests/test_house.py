"""The house rules (ARCHITECTURE.md), read from the code's own imports and definitions.

- a family package imports only itself, the family contract, the shared toolkit and the errors (and the
  lazy torch, ``i2v_nodes.lazy``, which every room may import);
- nothing outside the families imports a family package, except the registry;
- the engine (``runtime``) imports no node, no host module and not the command line;
- the contract and the toolkit import no family, the toolkit not even the contract;
- nothing in the pack is imported by a built string, and its imports make no circle;
- no file over 400 lines, no function over 60 (nested functions counted in their parent), in the
  pack and the host;
- pyproject's explicit package list names every package.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACK, HOST = "i2v_nodes", "host_stub"
FAMILIES = f"{PACK}.families"
SHARED = {f"{FAMILIES}.contract", f"{FAMILIES}.toolkit"}  # what every family may build on
ERRORS = f"{PACK}.errors"
EVERYWHERE = {ERRORS, f"{PACK}.lazy"}  # what every room may import: the errors, torch on first use
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


PACK_MODULES = modules(PACK)


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The pack's modules ``name`` imports (at any depth of its code), with the line of each."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # ``from package import module`` imports the module; ``from module import name`` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in PACK_MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            if target in PACK_MODULES:
                yield target, node.lineno


def family_of(module: str) -> str | None:
    """The family package a module belongs to (None outside the family packages)."""
    parts = module.split(".")
    if module.startswith(FAMILIES + ".") and len(parts) > 2:
        package = ".".join(parts[:3])
        if package not in SHARED and package != f"{FAMILIES}.registry":
            return package
    return None


def in_shared(module: str, shared: str) -> bool:
    return module == shared or module.startswith(shared + ".")


def test_a_family_imports_only_itself_the_contract_the_toolkit_and_the_errors():
    wrong = []
    for name, path in PACK_MODULES.items():
        own = family_of(name)
        if own is None:
            continue
        for target, line in imports(name, path):
            allowed = (family_of(target) == own or target in EVERYWHERE
                       or any(in_shared(target, shared) for shared in SHARED))
            if not allowed:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_nothing_outside_the_families_imports_a_family_package_but_the_registry():
    wrong = [f"{path.relative_to(REPO)}:{line} imports {target}"
             for name, path in PACK_MODULES.items()
             if family_of(name) is None and name != f"{FAMILIES}.registry"
             for target, line in imports(name, path) if family_of(target) is not None]
    assert not wrong, "\n".join(wrong)


def test_the_contract_and_the_toolkit_import_no_family_and_the_toolkit_not_the_contract():
    # The one reach outward: a Trace's peak is measured by the engine's tracer (imported when asked).
    tracer = f"{PACK}.runtime.memory.trace"
    wrong = []
    for name, path in PACK_MODULES.items():
        for shared in SHARED:
            if not in_shared(name, shared):
                continue
            for target, line in imports(name, path):
                inside = target in EVERYWHERE or in_shared(target, f"{FAMILIES}.toolkit")
                if shared.endswith("contract"):
                    inside = inside or in_shared(target, shared) or target == tracer
                if not inside:
                    wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_engine_knows_no_host_and_no_node():
    engine = f"{PACK}.runtime"
    outside = (f"{PACK}.nodes", f"{PACK}.host", f"{PACK}.cli")
    wrong = [f"{path.relative_to(REPO)}:{line} imports {target}"
             for name, path in PACK_MODULES.items() if in_shared(name, engine)
             for target, line in imports(name, path) if any(in_shared(target, room) for room in outside)]
    assert not wrong, "\n".join(wrong)


def test_nothing_is_imported_by_a_built_string():
    built = []
    for path in PACK_MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and not (
                    node.args and isinstance(node.args[0], ast.Constant)):
                built.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not built, f"imports by a built string: {built}"


def test_the_pack_has_no_import_circle():
    graph = {name: {target for target, _ in imports(name, path) if target != name}
             for name, path in PACK_MODULES.items()}
    circles = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert not circles, f"import circles: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative: the pack is deeper than the recursion limit
    allows only in theory, but a test should not depend on it)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def too_long(path: Path) -> Iterator[str]:
    """The file if it is over the limit, and each function over its limit (nested ones inside)."""
    source = path.read_text(encoding="utf-8")
    lines = len(source.splitlines())
    if lines > MAX_FILE_LINES:
        yield f"{path.relative_to(REPO)}: {lines} lines"
    pending = [ast.parse(source)]
    while pending:
        for child in ast.iter_child_nodes(pending.pop()):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([d.lineno for d in child.decorator_list] + [child.lineno])
                length = child.end_lineno - first + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{path.relative_to(REPO)}:{child.lineno} {child.name}: {length} lines"
            else:
                pending.append(child)


@pytest.mark.parametrize("package", [PACK, HOST])
def test_no_file_over_400_lines_and_no_function_over_60(package):
    offenders = [problem for path in sorted((REPO / package).rglob("*.py")) for problem in too_long(path)]
    assert not offenders, "\n".join(offenders)


def test_pyproject_lists_every_package():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11's")
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for package in (PACK, HOST) for name, path in modules(package).items()
                if path.name == "__init__.py"}
    missing, extra = sorted(packages - listed), sorted(listed - packages)
    assert not missing and not extra, f"missing: {missing}; not packages: {extra}"
