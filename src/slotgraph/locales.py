"""The languages slotgraph speaks: one gettext catalogue each, `web/locales/<locale>.po`.

Here, outside the ways in, so a service can ask which languages there are (the manage page's
language change, services/page_manage.py) without importing the pages' code: services import
no way in (tests/test_import_direction.py). How a catalogue is read, compiled and used to
format dates is slotgraph/i18n.py's.
"""

from __future__ import annotations

import functools
from pathlib import Path

LOCALES_DIR = Path(__file__).parent / "web" / "locales"
DEFAULT_LOCALE = "en"


@functools.cache
def available_locales() -> tuple[str, ...]:
    """The locales with a catalogue, e.g. ("de", "en")."""
    return tuple(sorted(p.stem for p in LOCALES_DIR.glob("*.po")))
