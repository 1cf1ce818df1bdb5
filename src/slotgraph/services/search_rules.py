"""A search's rules for each resource, built once per distinct content of its rule columns.

Building `av.Rules` from a resource's columns (converting the row, parsing its weekly hours and
exceptions, the public key's notice, the hours' text) cost a search 13-20 us per resource, every
time; a look-up costs 1.3 us. Here it is done once per distinct *content*: the key is the rule
columns themselves, the JSON ones as their text, the durations as read (ADR 0015). Two rows
with the same columns have the same rules, so a changed resource has another key and can never
be answered from an older entry, whichever process or connection changed it, and whatever its
`version` says: nothing here trusts a counter or a clock. The cache is per process, least
recently used first out, bounded in bytes (`RULES_CACHE_BYTES`); an entry too large for an
eighth of it is built and not kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, time, timedelta
from typing import Any

import orjson

from slotgraph.domain import availability as av

RULES_CACHE_BYTES = 1 << 20  # per process
# An entry's size, estimated high: its key, the parsed hours (a pair "09:00","17:00" is 17
# characters of JSON and about 250 bytes of tuples and times) and the two Rules objects.
# tests/api/test_search_rules.py measures real entries against it.
_ENTRY_BYTES = 3_000
_BYTES_PER_CHARACTER = 24

# The columns a resource's rules are made of (a search loads only these, and the id).
RULE_COLUMNS = (
    "timezone",
    "weekly_hours",
    "exceptions",
    "buffer_before",
    "buffer_after",
    "min_notice",
    "max_advance",
    "min_duration",
    "max_duration",
    "slot_step",
)
# The rule columns in RULE_COLUMNS' order, the JSON ones (weekly hours, exceptions) as text.
RuleKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SearchRules:
    """What a search reads of one resource's rules: its own (a secret key's search), with
    a start that has passed never offered (a public key's), and its hours' identity (resources
    with the same zone and hours share one opening computation)."""

    own: av.Rules
    public: av.Rules
    hours: tuple[str, str | None, str]


def key_of_values(resource: Any) -> RuleKey:
    """The key of rule columns read decoded (SQLite's rows): the JSON written out again, keys
    sorted, so the same content gives the same key."""
    return tuple(
        _text(value) if name in _JSON_COLUMNS else value
        for name in RULE_COLUMNS
        for value in (getattr(resource, name),)
    )


_JSON_COLUMNS = ("weekly_hours", "exceptions")


def _text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class _Cache:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.entries: OrderedDict[RuleKey, tuple[SearchRules, int]] = OrderedDict()
        self.lock = threading.Lock()  # the bench's and the tests' threads share the module

    def get(self, key: RuleKey, decode: Callable[[RuleKey], RuleKey] | None = None) -> SearchRules:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found[0]
        made = _build(key if decode is None else decode(key))
        size = entry_bytes(key)
        if size * 8 > self.budget:
            return made
        with self.lock:
            if key not in self.entries:
                self.entries[key] = (made, size)
                self.used += size
                while self.used > self.budget:
                    _, (_, freed) = self.entries.popitem(last=False)
                    self.used -= freed
        return made

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.used = 0


def entry_bytes(key: RuleKey) -> int:
    """An entry's size as the budget counts it (an estimate from above)."""
    texts = sum(len(part) for part in key if isinstance(part, str))
    return _ENTRY_BYTES + _BYTES_PER_CHARACTER * texts


_CACHE = _Cache(RULES_CACHE_BYTES)


def search_rules(key: RuleKey, decode: Callable[[RuleKey], RuleKey] | None = None) -> SearchRules:
    """The rules of a resource whose rule columns are `key`: as the models hold them
    (`key_of_values`), or as read (PostgreSQL's row: the JSON as text, the durations as
    seconds), which `decode` turns into the former when the rules have to be built."""
    return _CACHE.get(key, decode)


def _build(key: RuleKey) -> SearchRules:
    timezone, weekly_text, exceptions_text, *durations = key
    weekly = None if weekly_text is None else json.loads(weekly_text)
    exceptions = [] if exceptions_text is None else json.loads(exceptions_text)
    rules = rules_from(timezone, weekly, exceptions or [], *durations)
    # What may be booked may be offered: the public key never books a start that has passed
    # (domain.rules.check_start_for_key), so it is not offered one either.
    public = rules if rules.min_notice is not None else replace(rules, min_notice=timedelta(0))
    return SearchRules(rules, public, (timezone, weekly_text, exceptions_text))


def rules_from(
    timezone: str,
    weekly_hours: dict[str, list[list[str]]] | None,
    exceptions: list[dict[str, Any]],
    buffer_before: timedelta,
    buffer_after: timedelta,
    min_notice: timedelta | None,
    max_advance: timedelta | None,
    min_duration: timedelta | None,
    max_duration: timedelta | None,
    slot_step: timedelta,
) -> av.Rules:
    """A resource's rules from its columns as the models hold them (services/busy.rules_of)."""

    def hours(pairs: list[list[str]]) -> list[tuple[time, time | None]]:
        return [
            (time.fromisoformat(a), None if b == "24:00" else time.fromisoformat(b))
            for a, b in pairs
        ]

    weekly = None
    if weekly_hours is not None:
        weekly = {day: hours(pairs) for day, pairs in weekly_hours.items()}
    return av.Rules(
        timezone=timezone,
        weekly_hours=weekly,
        exceptions={date.fromisoformat(e["date"]): hours(e["hours"]) for e in exceptions},
        buffer_before=buffer_before,
        buffer_after=buffer_after,
        min_notice=min_notice,
        max_advance=max_advance,
        min_duration=min_duration,
        max_duration=max_duration,
        slot_step=slot_step,
    )
