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
    found = re.search(r"\{([a-z,]+)\}", usage)
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
