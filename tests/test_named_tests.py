"""Every test file the code and the docs name as proof of a claim exists: a comment or a doc that
sends the reader to a moved or renamed test sends them nowhere (two did, on 2026-11-30:
tests/services/test_search_rules.py and tests/timekit/test_tables.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"(?<![\w./-])(tests/(?:[\w-]+/)*[\w-]+\.py)\b")


def test_the_test_files_named_in_src_and_docs_exist() -> None:
    texts = [*(ROOT / "src").rglob("*.py"), *(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]
    missing = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in texts
        for name in set(NAMED.findall(path.read_text()))
        if not (ROOT / name).is_file()
    )
    assert missing == []
