"""The dependencies go one way: the ways in (api/, web/, cli) call services; services and the
domain import no way in. (Before, services/page_manage.py imported web.i18n for the list of
languages; slotgraph/locales.py holds it now.) Nor through another module: services import
notifications/, which imported web.i18n (slotgraph/i18n.py now), and deliveries imported the
`timekit` webhook's renderer, which imported the /v2 adapter (slotgraph/timekit_shape.py now).
The domain is pure, so it imports no services and no database either. Read from the source with
`ast`, every import of a module, nested ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src"
PACKAGE = SRC / "slotgraph"
WAYS_IN = (
    "slotgraph.api",
    "slotgraph.web",
    "slotgraph.cli",
    "slotgraph.cli_commands",
    "slotgraph.cli_database",
    "slotgraph.cli_help",
)
FORBIDDEN = {
    "services": WAYS_IN,
    "domain": (*WAYS_IN, "slotgraph.services", "slotgraph.db"),
}


def _package(path: Path) -> str:
    """The package a file's relative imports start from (`slotgraph.services` for its modules)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")


def imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of each import in `source`, relative ones made absolute from `package`;
    `from a import b` names both `a` and `a.b` (b may be a module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(sources: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    """module -> the modules of `sources` it imports ({name: (source, package)}). Importing
    `a.b.c` runs `a` and `a.b` first, so a module imports its parents' packages too, and so does
    every module its own package (what `import slotgraph.services.x` runs)."""

    def with_parents(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & sources.keys()

    graph = {}
    for name, (source, package) in sources.items():
        edges = set().union(*(with_parents(m) for _, m in imports(source, package)))
        graph[name] = (edges | with_parents(package)) - {name}
    return graph


def reached(graph: dict[str, set[str]], start: str, prefixes: tuple[str, ...]) -> list[str]:
    """The shortest chain of imports from `start` to a module under `prefixes`, or []."""
    came_from: dict[str, str] = {start: ""}
    queue = [start]
    for module in queue:  # breadth first: the shortest chain is the one to read
        for other in sorted(graph.get(module, ())):
            if other in came_from:
                continue
            came_from[other] = module
            if _refused(other, prefixes):
                chain = [other]
                while came_from[chain[-1]]:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            queue.append(other)
    return []


def _refused(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_no_way_in(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert len(files) > 3, layer
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in files
        for line, module in imports(path.read_text(), _package(path))
        if _refused(module, FORBIDDEN[layer])
    ]
    assert wrong == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_reaches_no_way_in_through_another_module(layer: str) -> None:
    # Before: services imported notifications/, whose render, channel, ics and kinds imported
    # web.i18n, so a service reached the pages' code in two steps; the direct check saw nothing.
    modules = _modules()
    sources = {name: (path.read_text(), _package(path)) for name, path in modules.items()}
    graph = import_graph(sources)
    prefix = f"slotgraph.{layer}"
    own = sorted(name for name in modules if name == prefix or name.startswith(prefix + "."))
    assert len(own) > 3, layer
    chains = {name: reached(graph, name, FORBIDDEN[layer]) for name in own}
    assert {name: " -> ".join(chain) for name, chain in chains.items() if chain} == {}


def test_the_transitive_check_sees_a_way_in_two_steps_away() -> None:
    # A service that imports a way out, which imports a way in inside a function: found, with
    # the chain; one that imports only its neighbour and the domain is not.
    package = {"slotgraph": "slotgraph"} | {
        f"slotgraph.{p}": f"slotgraph.{p}" for p in ("services", "notifications", "web", "domain")
    }
    modules = {
        "slotgraph.services.a": "from slotgraph.notifications import render\n",
        "slotgraph.services.b": "from . import c\nfrom slotgraph.domain import x\n",
        "slotgraph.services.c": "import slotgraph.domain.x\n",
        "slotgraph.notifications.render": "def f():\n    from ..web import i18n\n",
        "slotgraph.web.i18n": "",
        "slotgraph.domain.x": "",
    }
    graph = import_graph(
        {name: ("", name) for name in package}
        | {name: (source, name.rpartition(".")[0]) for name, source in modules.items()}
    )
    assert reached(graph, "slotgraph.services.a", WAYS_IN) == [
        "slotgraph.services.a",
        "slotgraph.notifications.render",
        "slotgraph.web",  # `from ..web import i18n` runs the package first
    ]
    assert reached(graph, "slotgraph.notifications.render", ("slotgraph.web.i18n",)) == [
        "slotgraph.notifications.render",
        "slotgraph.web.i18n",
    ]
    assert reached(graph, "slotgraph.services.b", WAYS_IN) == []
    assert "slotgraph.domain.x" in graph["slotgraph.services.c"]


def test_the_check_sees_imports_of_a_way_in() -> None:
    # The check itself can fail: the import services/page_manage.py had, one inside a function,
    # and relative ones, from a module of services/bookings/.
    source = (
        "from slotgraph.web.i18n import available_locales\n"
        "def f():\n    from slotgraph import api\n"
        "from ...web import i18n\n"
        "from .. import common\n"
    )
    found = imports(source, "slotgraph.services.bookings")
    refused = [(line, m) for line, m in found if _refused(m, WAYS_IN)]
    assert sorted(line for line, _ in refused) == [1, 1, 3, 4, 4]
    assert (4, "slotgraph.web.i18n") in refused
    assert (5, "slotgraph.services.common") in found
    assert (
        _package(PACKAGE / "services" / "bookings" / "reading.py") == "slotgraph.services.bookings"
    )
    assert _package(PACKAGE / "services" / "__init__.py") == "slotgraph.services"
