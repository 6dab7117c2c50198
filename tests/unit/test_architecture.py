"""The package's shape, read from its source: which part imports which, module sizes, and
no attribute checks switched off.

Every module of the ``datahub`` package (``datahub/``, and ``extensions/`` and
``spawners/``, installed as ``datahub.extensions`` and ``datahub.spawners``) is parsed with
`ast`; every import counts, also those inside functions or under ``TYPE_CHECKING``: a part
that needs another only for a type still depends on it. A *part* is a subpackage
(``datahub.gateway``) or a top-level module (``datahub.identity``), each its own node.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where each part of the package lives in the checkout.
SOURCES = {
    "datahub": ROOT / "datahub",
    "datahub.extensions": ROOT / "extensions",
    "datahub.spawners": ROOT / "spawners",
}
#: The parts the gateway must not import: it reaches them only through the callables and
#: interfaces the service hands it (`datahub.gateway.core.Gateway`).
GATEWAY_MUST_NOT_IMPORT = ("datahub.quotas", "datahub.audit", "datahub.sharing", "datahub.service")
#: The most lines a module of the gateway may have.
GATEWAY_MODULE_LINES = 400


def _module_name(package: str, base: Path, path: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, base in SOURCES.items():
        for path in sorted(base.rglob("*.py")):
            if "node_modules" in path.parts or "__pycache__" in path.parts:
                continue
            if package == "datahub" and path.relative_to(base).parts[0] in (
                "extensions",
                "spawners",
            ):
                continue  # a build's copy, if any; the checkout's directories count
            found[_module_name(package, base, path)] = path
    return found


def part_of(module: str) -> str:
    """The part *module* belongs to: ``datahub.<first>``, or ``datahub`` itself."""
    pieces = module.split(".")
    return ".".join(pieces[:2])


def imports_of(module: str) -> Iterator[str]:
    """The package's modules that *module* imports (absolute names)."""
    path = modules()[module]
    known = modules()
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "datahub":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                # A package's own name is its anchor for level 1; a module's is its parent.
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base.split(".")[0] != "datahub":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in known else base


def part_graph() -> dict[str, dict[str, list[str]]]:
    """Part -> the parts it imports -> the imports that make it so (``a -> b``)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module in modules():
        source = part_of(module)
        graph.setdefault(source, {})
        for target in imports_of(module):
            target_part = part_of(target)
            if target_part != source:
                graph[source].setdefault(target_part, []).append(f"{module} -> {target}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# ------------------------------------------------------------------------ the checks


def test_the_analysis_sees_relative_and_absolute_imports():
    # The checks below prove nothing if the parser misses imports.
    assert "datahub.gateway" in part_graph()["datahub.service"]
    assert "datahub.wire" in part_graph()["datahub.gateway"]
    assert part_of("datahub.gateway.handlers") == "datahub.gateway"
    assert part_of("datahub.identity") == "datahub.identity"
    assert cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [
        ["a", "b", "c"]
    ]


def test_no_two_parts_import_each_other_even_through_others():
    graph = part_graph()
    problems = []
    for component in cycles(graph):
        members = set(component)
        edges = [
            edge
            for source in component
            for target, why in sorted(graph[source].items())
            if target in members
            for edge in why[:3]
        ]
        problems.append(f"{' <-> '.join(component)}:\n    " + "\n    ".join(edges))
    assert not problems, "Import cycles between parts:\n" + "\n".join(problems)


def test_the_gateway_imports_no_feature_and_not_the_service():
    wrong = [
        f"{module} -> {target}"
        for module in modules()
        if part_of(module) == "datahub.gateway"
        for target in imports_of(module)
        if part_of(target) in GATEWAY_MUST_NOT_IMPORT
    ]
    assert not wrong, "The gateway imports parts it must reach through interfaces:\n" + (
        "\n".join(wrong)
    )


def test_every_gateway_module_stays_small():
    long = {
        module: lines
        for module, path in modules().items()
        if part_of(module) == "datahub.gateway"
        and (lines := len(path.read_text().splitlines())) > GATEWAY_MODULE_LINES
    }
    assert not long, f"Gateway modules over {GATEWAY_MODULE_LINES} lines: {long}"


def test_no_attribute_check_is_switched_off():
    marker = "type: ignore[attr-defined]"
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in modules().values()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if marker in line
    ]
    assert not found, f"{marker} in: {', '.join(found)}"
