"""Which fields each graph needs at creation. Pure; returns (field, message) pairs."""

from __future__ import annotations

from collections.abc import Mapping

from slotgraph.domain.graphs import PAYMENT_GRAPHS, SEAT_GRAPHS

_SPAN = ("resource_id", "start_time", "end_time")
_TIMES = ("start_time", "end_time")
_GROUP_OWNER_ONLY = ("max_seats", "min_cancel_time", "min_booking_time", "max_booking_time")


def booking_shape_errors(graph: str, given: Mapping[str, object]) -> list[tuple[str, str]]:
    """Errors in the fields of a new booking of `graph`; `given` maps field -> value (or None)."""
    errors: list[tuple[str, str]] = []

    def has(name: str) -> bool:
        return given.get(name) is not None

    if graph in SEAT_GRAPHS:
        if not has("owner_booking_id"):
            errors.append(("owner_booking_id", f"required for graph {graph}"))
        errors.extend(
            (name, "comes from the owner booking; leave it out")
            for name in (*_SPAN, "resource_ids")
            if has(name)
        )
    else:
        if has("owner_booking_id"):
            errors.append(("owner_booking_id", "only for graphs group_customer*"))
        if has("resource_id") and has("resource_ids"):
            errors.append(("resource_ids", "give resource_id or resource_ids, not both"))
        elif not has("resource_id") and not has("resource_ids"):
            errors.append(("resource_id", "required (or a pool in resource_ids)"))
        errors.extend((name, "required") for name in _TIMES if not has(name))
    if has("client_id") and has("customer"):
        errors.append(("customer", "give client_id or customer, not both"))
    if graph != "group_owner" and not has("client_id") and not has("customer"):
        errors.append(("client_id", "client_id or customer is required"))
    if graph == "group_owner":
        if not has("max_seats"):
            errors.append(("max_seats", "required for graph group_owner"))
    else:
        errors.extend(
            (name, "only for graph group_owner") for name in _GROUP_OWNER_ONLY if has(name)
        )
    if has("payment_timeout") and graph not in PAYMENT_GRAPHS:
        errors.append(("payment_timeout", "only for the payment graphs"))
    return errors
