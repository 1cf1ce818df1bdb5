"""The per-inbox email limit's rule (domain/email_quota.py; ADR 0020)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slotgraph.domain.email_quota import admit, mailbox_key

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann@Example.COM", "ann@example.com"),
        ("ann+1@example.com", "ann@example.com"),
        ("ANN+a+b@example.com", "ann@example.com"),
        ("+x@example.com", "+x@example.com"),  # nothing before the tag: kept whole
        ("o'neil@example.com", "o'neil@example.com"),
    ],
)
def test_one_inbox_however_spelt(address: str, key: str) -> None:
    assert mailbox_key(address) == key


def test_the_limit_in_a_sliding_hour() -> None:
    sends: list[list[float | str]] = []
    for i, minute in enumerate((0, 10, 20)):
        d = admit(sends, delivery_id=f"d{i}", now=T + timedelta(minutes=minute), limit=3)
        assert d.admitted
        sends = d.sends
    assert len(sends) == 3
    # The fourth within the hour of the first is refused, and nothing is added.
    d = admit(sends, delivery_id="d3", now=T + timedelta(minutes=59), limit=3)
    assert not d.admitted
    assert len(d.sends) == 3
    # A retry of one counted goes again without counting.
    d = admit(sends, delivery_id="d1", now=T + timedelta(minutes=59), limit=3)
    assert d.admitted
    assert len(d.sends) == 3
    # An hour after the first, one more may go (the first has left the window).
    d = admit(sends, delivery_id="d3", now=T + timedelta(minutes=60, seconds=1), limit=3)
    assert d.admitted
    assert [s[1] for s in d.sends] == ["d1", "d2", "d3"]
