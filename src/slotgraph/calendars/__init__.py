"""Calendars: iCalendar feeds and free/busy, and two-way CalDAV sync (docs/calendars.md)."""
