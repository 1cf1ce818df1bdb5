"""The dependencies go one way: the ways in (api/, web/, cli) call services; services and the
domain import no way in. (Before, services/page_manage.py imported web.i18n for the list of
languages; slotgraph/locales.py holds it now.) The domain is pure, so it imports no services and
no database either. Read from the source with `ast`, every import of a module, nested ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src"
PACKAGE = SRC / "slotgraph"
WAYS_IN = ("slotgraph.api", "slotgraph.web", "slotgraph.cli", "slotgraph.cli_help")
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
