"""Graphs and the benchmark floor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from slotgraph.api.deps import AnyKey, Session
from slotgraph.domain.graphs import GRAPHS
from slotgraph.errors import NotFound

router = APIRouter(tags=["meta"])


@router.get("/v1/graphs")
async def list_graphs(_: AnyKey) -> dict[str, Any]:
    """Every graph's states, actions and transitions: the table the server enforces."""
    return {"data": [g.describe() for g in GRAPHS.values()]}


@router.get("/v1/graphs/{name}")
async def get_graph(name: str, _: AnyKey) -> dict[str, Any]:
    graph = GRAPHS.get(name)
    if graph is None:
        raise NotFound(f"No graph {name!r}; graphs: {', '.join(GRAPHS)}.")
    return graph.describe()


@router.get("/v1/ping")
async def ping(_: AnyKey, session: Session) -> dict[str, bool]:
    """Authenticate and run one `SELECT 1`: readiness, and the floor the benchmarks compare to."""
    async with session.begin():
        await session.execute(text("SELECT 1"))
    return {"ok": True}
