"""README's "Command line" lists every command `slotgraph --help` offers (`apps settings` was
missing from it): a newcomer reads the README, not the help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slotgraph.cli import main

README = Path(__file__).parent.parent / "README.md"


def _choices(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    usage = capsys.readouterr().out
    found = re.search(r"\{([a-z,-]+)\}", usage)
    assert found is not None, usage
    return found.group(1).split(",")


def test_readme_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    block = README.read_text().split("## Command line", 1)[1].split("```")[1]
    listed = {" ".join(line.split()[:3]) for line in block.splitlines() if line.strip()}
    commands = [f"slotgraph {c}" for c in _choices(capsys) if c != "apps"]
    commands += [f"slotgraph apps {c}" for c in _choices(capsys, "apps")]
    assert len(commands) >= 6
    for command in commands:
        assert any(line.startswith(command) for line in listed), (command, listed)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ((), "a self-hostable booking engine"),
        (("serve",), "then serve the API, the booking pages and, unless --no-worker, the worker"),
        (("worker",), "Run the worker alone: deliver webhooks, emails and calendar pushes"),
        (("migrate",), "Create the database's schema, or upgrade it to head"),
        (("apps",), "manage apps (tenants), their keys and settings"),
        (("apps", "create"), "The keys are shown only here"),
        (("apps", "list"), "List every app with its keys' prefixes (not the keys)"),
        (("apps", "settings"), "Show an app's settings, or change the ones named"),
        (("apps", "add-key"), "The old key keeps working until `apps revoke-key`"),
        (("apps", "revoke-key"), "requests with it get 401"),
    ],
)
def test_each_command_says_what_it_does(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    """Each `--help` says what its command does, and which database it works on (before, the
    top level printed a module docstring in backticks, and `worker`, `migrate`, `apps create`
    and `apps list` printed their options only)."""
    text = " ".join(_help(capsys, *argv).split())
    assert says in text, text
    if argv and argv != ("apps",):
        assert "Uses $SLOTGRAPH_DATABASE_URL (slotgraph --help)." in text, text
    assert "`slotgraph serve | worker" not in text


def test_the_top_level_names_the_database_and_the_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = " ".join(_help(capsys).split())
    assert "The database is $SLOTGRAPH_DATABASE_URL, by default sqlite:///./data/slotgraph.db" in (
        text
    )
    assert "Every setting comes from the environment (SLOTGRAPH_*): docs/operations.md." in text


def test_the_arguments_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert "NAME the app's name" in " ".join(_help(capsys, "apps", "create").split())
    settings = " ".join(_help(capsys, "apps", "settings").split())
    assert "APP_ID the app's app_id" in settings
    assert "NAME=VALUE a setting to change; none: show them" in settings


def test_the_layout_names_files_that_exist() -> None:
    """README's Layout named webhook_schemas.py and calendar_schemas.py as if under schemas/,
    and left out notifications/, calendars/ and the /v2 adapter: every path it names is there,
    every .py it names is somewhere under src/slotgraph, and every package of src/slotgraph is
    named."""
    root = README.parent
    block = README.read_text().split("## Layout", 1)[1].split("```")[1]
    paths = re.findall(r"\b((?:src|tests|bench)/[\w/.]*\w/?)", block)
    assert len(paths) >= 10, paths
    for path in paths:
        assert (root / path).exists(), path
    sources = {p.name for p in (root / "src" / "slotgraph").rglob("*.py")}
    for name in re.findall(r"\b(\w+\.py)\b", block):
        assert name in sources, name
    packages = {p.parent.name for p in (root / "src" / "slotgraph").glob("*/__init__.py")}
    for package in packages:
        assert f"src/slotgraph/{package}/" in block, package


def test_the_documentation_table_names_every_page() -> None:
    """README's table of pages left out docs/security.md and docs/testing.md."""
    table = README.read_text().split("## Documentation", 1)[1].split("\n## ", 1)[0]
    for page in sorted((README.parent / "docs").glob("*.md")):
        assert f"[docs/{page.name}](docs/{page.name})" in table, page.name
