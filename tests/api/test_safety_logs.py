"""Issue 10: no personal data in logs. A database error is logged with where it happened, its
type, SQLSTATE and statement, but never the values: not the parameters, and not the server's
message or DETAIL, which quote them (PostgreSQL's unique violation names the email)."""

from __future__ import annotations

import logging
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine
from slotgraph.logs import JsonFormatter, TextFormatter
from tests.api.conftest import Api

EMAIL = "ada.lovelace@example.com"
PHONE = "+4799887766"


def logged(exc: BaseException) -> list[str]:
    try:
        raise exc
    except BaseException:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "slotgraph.api", logging.ERROR, __file__, 1, "unhandled", (), exc_info
    )
    return [JsonFormatter().format(record), TextFormatter().format(record)]


async def test_a_database_error_is_logged_without_the_values(api: Api, engine: AsyncEngine) -> None:
    client = await api.client(email=EMAIL, phone=PHONE)
    url = engine.url.render_as_string(hide_password=False)
    own = create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", ""))
    try:
        async with own.begin() as conn:
            app_id = (
                await conn.execute(
                    text("SELECT app_id FROM clients WHERE id = :id"),
                    {
                        "id": client["client_id"]
                        if api.backend == "postgresql"
                        else uuid.UUID(client["client_id"]).hex
                    },
                )
            ).scalar_one()
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(
                    text(
                        "INSERT INTO clients (id, app_id, name, email, phone, meta, version,"
                        " created_at, updated_at) VALUES (:id, :app, :name, :email, :phone,"
                        " '{}', 1, :at, :at)"
                    ),
                    {
                        "id": uuid.uuid4() if api.backend == "postgresql" else uuid.uuid4().hex,
                        "app": app_id,
                        "name": "Ada Lovelace",
                        "email": EMAIL,
                        "phone": PHONE,
                        "at": datetime.now(UTC),
                    },
                )
    finally:
        await own.dispose()
    for line in logged(caught.value):
        assert "IntegrityError" in line or "UniqueViolation" in line, line
        assert "INSERT INTO clients" in line
        for secret in (EMAIL, PHONE, "Lovelace"):
            assert secret not in line, line


def test_other_errors_are_logged_as_before() -> None:
    for line in logged(ValueError("a plain message")):
        assert "a plain message" in line
