"""Every relative link of README.md and docs/ leads somewhere: its file exists, and its
`#anchor` is a heading of that page, by GitHub's rule for a heading's anchor (lower case;
anything but letters, digits, spaces, `-` and `_` dropped; spaces to `-`; a repeated heading
gets `-1`, `-2`, ...). docs/operations.md linked benchmarks.md#...-bench-first_use, which no
heading makes (the heading's is ...-benchfirst_usepy)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchors(page: Path) -> set[str]:
    made: dict[str, int] = {}
    found = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen = made.get(slug, 0)
        made[slug] = seen + 1
        found.add(slug if seen == 0 else f"{slug}-{seen}")
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not target.startswith(("http://", "https://", "mailto:"))
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    for target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), target
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), target


def test_the_rule_reads_headings_as_github_does() -> None:
    """Expectations written out by hand from GitHub's own anchors of these headings."""
    page = ROOT / "docs" / "benchmarks.md"
    assert "first-use-after-a-restart-benchfirst_usepy" in anchors(page)
    assert "accepted-ranges" in anchors(ROOT / "docs" / "api.md")
    assert "safe-retries-idempotency-key" in anchors(ROOT / "docs" / "api.md")
