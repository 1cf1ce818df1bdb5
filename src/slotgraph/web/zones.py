"""The time zones offered in a page's zone chooser (any IANA zone also works as `?tz=`)."""

from __future__ import annotations

from collections.abc import Iterable

# Common zones, one or two per region; the page's, its resources' and the visitor's are added.
COMMON = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/Reykjavik",
    "UTC",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Europe/Oslo",
    "Europe/Paris",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Sydney",
    "Pacific/Auckland",
)


def zone_choices(current: str, page_zone: str, resource_zones: Iterable[str]) -> list[str]:
    """The visitor's zone, the page's and its resources' first, then the common ones."""
    return list(dict.fromkeys([current, page_zone, *resource_zones, *COMMON]))
