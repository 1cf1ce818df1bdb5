"""Bench data goes in through the models' table metadata, not hand-written column lists.

`insert_sql` names the columns the models define: the caller gives SQL for the ones that
matter to a scenario, the models' own defaults fill the rest, and a column that would need a
value and has none (a new NOT NULL column, say) stops the benchmark with its name instead of
failing deep inside PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from sqlalchemy import Table, literal
from sqlalchemy.dialects import postgresql

from slotgraph.db.models import Base

BOOKINGS = Base.metadata.tables["bookings"]
BOOKING_HOLDS = Base.metadata.tables["booking_holds"]
RESOURCE_BLOCKS = Base.metadata.tables["resource_blocks"]
RESOURCES = Base.metadata.tables["resources"]
APPS = Base.metadata.tables["apps"]


def _default_sql(table: Table, key: str) -> str | None:
    """The model's Python-side default of a column, as SQL (None: it has none)."""
    column = table.c[key]
    default = column.default
    if default is None:
        return None
    value = default.arg if default.is_scalar else default.arg(None)  # type: ignore[attr-defined]
    if isinstance(value, uuid.UUID):
        return "gen_random_uuid()"  # a fresh id per row, as the model's new_id() gives
    if isinstance(value, dict | list):
        return "'" + json.dumps(value) + "'"
    rendered = literal(value, type_=column.type).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(rendered)


def insert_sql(table: Table, values: Mapping[str, str], source: str | None = None) -> str:
    """`INSERT INTO table (...) VALUES (...)`, or `... SELECT ... <source>` with `source`.

    `values` maps a column to its SQL (`$1`, `now()`, `'instant'`, `b.start_time`).
    """
    unknown = set(values) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {sorted(unknown)}")
    columns: dict[str, str] = {}
    for column in table.columns:
        sql = values.get(column.key) or _default_sql(table, column.key)
        if sql is not None:
            columns[column.key] = sql
        elif not column.nullable and column.server_default is None:
            raise ValueError(f"{table.name}.{column.key} needs a value in the benchmark's rows")
    names, exprs = ", ".join(columns), ", ".join(columns.values())
    if source is None:
        return f"INSERT INTO {table.name} ({names}) VALUES ({exprs})"
    return f"INSERT INTO {table.name} ({names}) SELECT {exprs} {source}"
