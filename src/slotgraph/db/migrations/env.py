"""Alembic environment: migrations run on the connection `slotgraph.db.migrate` hands in."""

from __future__ import annotations

from alembic import context

from slotgraph.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `slotgraph migrate` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
