"""Logging: one JSON object per line for machines, readable text on a terminal.

Every line carries the request id of the request that caused it (a context variable set by the
access-log middleware, `api/observe.py`). Extra fields are passed as `extra={"fields": {...}}`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from slotgraph.domain.availability import rfc3339

request_id: ContextVar[str | None] = ContextVar("slotgraph_request_id", default=None)

LogFormat = Literal["auto", "json", "text"]

_make_record = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every log record remembers the request it was made in, wherever it is formatted later."""
    record = _make_record(*args, **kwargs)
    record.request_id = request_id.get()
    return record


logging.setLogRecordFactory(_record_with_request_id)


def new_request_id() -> str:
    return uuid.uuid4().hex


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


_DRIVERS = ("asyncpg", "sqlite3", "aiosqlite", "psycopg")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _from_database(exc: BaseException) -> bool:
    # SQLAlchemy's errors by name: a process that has not imported it (`slotgraph --help`, which
    # imports this module) holds none of them, and importing it here took 0.2 s of every start.
    sqlalchemy = any(
        c.__module__ == "sqlalchemy.exc" and c.__name__ == "DBAPIError" for c in type(exc).__mro__
    )
    return sqlalchemy or type(exc).__module__.split(".")[0] in _DRIVERS


def format_exception(exc_info: Any) -> str | None:
    """A database error without its message: the engine hides the statement's parameters
    (`hide_parameters`), but the server's message and DETAIL quote values too (an email in a
    unique violation, a name in a bad cast). Kept: where it happened, the type, the SQLSTATE and
    the statement. None: not a database error, format it as usual."""
    exc = exc_info[1]
    if exc is None or not any(_from_database(e) for e in _chain(exc)):
        return None
    lines = ["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__)]
    for e in _chain(exc):
        name = f"{type(e).__module__}.{type(e).__qualname__}"
        if not _from_database(e):
            lines.append(f"{name}: {e}\n")
            continue
        orig = getattr(e, "orig", e)
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", "")
        statement = " ".join(str(getattr(e, "statement", "") or "").split())[:500]
        lines.append(
            f"{name}: (message withheld: it may quote personal data) "
            f"sqlstate={sqlstate or '?'}" + (f" statement={statement}" if statement else "") + "\n"
        )
    return "".join(lines).rstrip("\n")


class _Redacting(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return format_exception(ei) or super().formatException(ei)


class JsonFormatter(_Redacting):
    """`{"time", "level", "logger", "message", "request_id", ...fields, "exception"}`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": rfc3339(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(_Redacting):
    """`10:00:00 INFO  slotgraph.access GET /v1/bookings 201 3.1ms request_id=...`."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        parts = [at, f"{record.levelname:<7}", record.name, record.getMessage()]
        parts += [f"{k}={v}" for k, v in _fields(record).items() if k not in _SHOWN_IN_MESSAGE]
        rid = getattr(record, "request_id", None)
        if rid:
            parts.append(f"request_id={rid}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# Access lines already say these in their message.
_SHOWN_IN_MESSAGE = frozenset({"method", "path", "status", "duration_ms"})


def _not_a_peers_answer(record: logging.LogRecord) -> bool:
    """False for the `caldav` library's lines through the root logger: on an answer that is
    not XML it logs the whole answer at INFO ("Expected some valid XML ... got this"), so a
    CalDAV server an app names wrote up to 32 MB of its choosing into our log at every sync.
    The sync's failure is recorded on the connection instead (docs/calendars.md)."""
    return not (record.name == "root" and f"{os.sep}caldav{os.sep}" in record.pathname)


def configure(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route every logger (uvicorn's too) to one stderr handler in the chosen format."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_not_a_peers_answer)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Alembic narrates every migration step and httpx every webhook POST at INFO (attempts are
    # recorded in the database); their warnings and errors still show.
    if root.level > logging.DEBUG:
        for chatty in ("alembic", "httpx", "httpcore"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    # uvicorn's own access log would be a second line per request; ours has the request id.
    logging.getLogger("uvicorn.access").disabled = True
