"""How queries.insert_rows writes plain rows: INSERTs built and compiled once per shape of rows
(ADR 0005), and filled by position.

A shape is the tables written, each with its column names and its number of rows. Its statement
is compiled once for the driver (db/driver_sql.py); a `Plan` also knows how to lay the rows'
values out as the statement's parameters without naming each one per call (sixty names were
formatted and looked up again for every create).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    String,
    Table,
    bindparam,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from slotgraph.db import driver_sql
from slotgraph.db.models import Resource

# The row's version on PostgreSQL: its xmin changes with every UPDATE of the row, and not when it is
# only locked. An optimistic read takes it; the write that depends on the read checks it.
RESOURCE_VERSION: ColumnElement[str] = literal_column("resources.xmin::text", String)

# The tables of a write, in order: each with its column names and its number of rows.
Shape = tuple[tuple[Table, tuple[str, ...], int], ...]
# A claim's row (queries.insert_rows): its table, its column names, its conflict rule.
ClaimShape = tuple[Table, tuple[str, ...], Callable[[Any], Any]]


@dataclass(frozen=True, slots=True)
class Plan:
    """An INSERT compiled once per shape (db/driver_sql.py), and how to fill its parameters
    without naming each: `picks` gives a row's values in its table's column order, and the
    parameters are the gate's, the claim's, then each table's rows' in the shape's order
    (`order` says where each is, if the compiler placed them otherwise)."""

    prepared: driver_sql.Prepared
    picks: tuple[Callable[[dict[str, Any]], tuple[Any, ...]], ...]
    order: tuple[int, ...] | None

    def ordered(self, values: list[Any]) -> list[Any]:
        return values if self.order is None else [values[i] for i in self.order]


@functools.lru_cache(maxsize=256)
def insert_plan(
    dialect: Dialect,
    shape: Shape,
    first: int = 0,
    *,
    gated: bool = False,
    claim: ClaimShape | None = None,
) -> Plan:
    """`_insert_statement` compiled once for the driver, with its plan."""
    stmt = _insert_statement(shape, first, gated=gated, claim=claim)
    names = [*(("gate_id", "gate_version") if gated else ())]
    names += [f"c_{key}" for key in (claim[1] if claim is not None else ())]
    for t, (_, keys, count) in enumerate(shape, start=first):
        names += [f"p{t}_{r}_{key}" for r in range(count) for key in keys]
    picks = tuple(_pick(keys) for _, keys, _ in shape)
    return _planned(driver_sql.prepare(stmt, dialect), names, picks)


@functools.lru_cache(maxsize=8)
def claim_plan(
    dialect: Dialect, table: Table, keys: tuple[str, ...], rule: Callable[[Any], Any]
) -> Plan:
    """A claim's row on its own (SQLite: one INSERT per table), under its rule, returning it."""
    values = {key: bindparam(f"c_{key}", type_=table.c[key].type) for key in keys}
    stmt = rule(sqlite.insert(table).values(values))
    return _planned(driver_sql.prepare(stmt, dialect), [f"c_{key}" for key in keys], ())


def _planned(
    prepared: driver_sql.Prepared,
    names: list[str],
    picks: tuple[Callable[[dict[str, Any]], tuple[Any, ...]], ...],
) -> Plan:
    position = {name: i for i, name in enumerate(names)}
    assert all(built is None for _, built, _ in prepared.params), "every value given per call"
    order = tuple(position[name] for name, _, _ in prepared.params)
    assert sorted(order) == list(range(len(names)))
    return Plan(prepared, picks, None if order == tuple(range(len(names))) else order)


def _pick(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row's values in the order of `keys` (as a tuple even for one key)."""
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


def _insert_statement(
    shape: Shape,
    first: int = 0,
    *,
    gated: bool = False,
    claim: ClaimShape | None = None,
) -> Insert:
    """One INSERT per table of `shape` (rows of named columns), chained as CTEs, built once.

    Bind parameters are named `p<table>_<row>_<column>`, so the statement (compiled once, by
    `insert_plan`) is reused for every call of the same shape. `gated`: every
    INSERT selects its rows from a CTE that locks the resource `gate_id` if its version is
    still `gate_version`, so nothing is written before that lock, and nothing at all without it.
    `claim` (PostgreSQL): its row (`c_<column>`) is inserted first (from the gate, if gated),
    under its conflict rule, and every other INSERT selects from what that returned.
    """

    def binds(t: int, r: int, table: Table, keys: tuple[str, ...]) -> dict[str, Any]:
        return {key: bindparam(f"p{t}_{r}_{key}", type_=table.c[key].type) for key in keys}

    source_of_rows: Any = None
    if gated:
        source_of_rows = (
            select(Resource.id)
            .where(
                Resource.id == bindparam("gate_id"),
                bindparam("gate_version") == RESOURCE_VERSION,
            )
            .with_for_update(key_share=True)
            .cte("gate")
        )
    if claim is not None:
        claim_table, claim_keys, rule = claim
        claimed = select(
            *(bindparam(f"c_{k}", type_=claim_table.c[k].type).label(k) for k in claim_keys)
        )
        if source_of_rows is not None:
            claimed = claimed.select_from(source_of_rows)
        insert_claim = postgresql.insert(claim_table).from_select(list(claim_keys), claimed)
        source_of_rows = rule(insert_claim).cte("claim")
    batches: list[Insert] = []
    for t, (table, keys, count) in enumerate(shape, start=first):
        if source_of_rows is not None:
            selects = [
                select(*(b.label(k) for k, b in binds(t, r, table, keys).items())).select_from(
                    source_of_rows
                )
                for r in range(count)
            ]
            source = selects[0] if count == 1 else union_all(*selects)
            batches.append(insert(table).from_select(list(keys), source))
        elif count > 1:
            batches.append(insert(table).values([binds(t, r, table, keys) for r in range(count)]))
        else:
            batches.append(insert(table).values(binds(t, 0, table, keys)))
    *ctes, last = batches
    return last.add_cte(*(c.cte(f"w{i}") for i, c in enumerate(ctes))) if ctes else last
