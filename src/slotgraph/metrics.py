"""Prometheus metrics (prometheus-client), in multiprocess mode under `serve --workers N`.

prometheus-client picks its storage when it is first imported: with `PROMETHEUS_MULTIPROC_DIR`
set, every process writes its samples to files there and `/metrics` adds them up. `slotgraph
serve` sets that directory before anything imports the library, so this module imports it lazily,
on first use; the metrics themselves are made once per process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latency buckets: a booking engine answers in milliseconds, a slow search in seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Metrics:
    http_duration: Histogram
    bookings_created: Counter
    transitions: Counter
    slot_conflicts: Counter
    availability_duration: Histogram
    webhook_attempts: Counter
    worker_loop_duration: Histogram
    rate_limit_store_failures: Counter
    emails_suppressed: Counter


@cache
def get() -> Metrics:
    from prometheus_client import Counter, Histogram

    return Metrics(
        http_duration=Histogram(
            "slotgraph_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
        ),
        bookings_created=Counter(
            "slotgraph_bookings_created_total", "Bookings created, by graph.", ["graph"]
        ),
        transitions=Counter(
            "slotgraph_booking_transitions_total",
            "Booking state changes (not creation), by graph and action.",
            ["graph", "action"],
        ),
        slot_conflicts=Counter(
            "slotgraph_slot_conflicts_total",
            "Requests refused with 409 slot_unavailable (the slot was taken).",
        ),
        availability_duration=Histogram(
            "slotgraph_availability_search_duration_seconds",
            "Time to compute an availability search (free slots or dates).",
            buckets=_BUCKETS,
        ),
        webhook_attempts=Counter(
            "slotgraph_webhook_attempts_total",
            "Webhook delivery attempts, by outcome (success, http_error, timeout, error, refused).",
            ["outcome"],
        ),
        worker_loop_duration=Histogram(
            "slotgraph_worker_loop_duration_seconds",
            "Time of one worker cycle (fan-out, timers, one batch of deliveries).",
            buckets=_BUCKETS,
        ),
        rate_limit_store_failures=Counter(
            "slotgraph_rate_limit_store_failures_total",
            "Times the shared rate-limit store (Redis) failed to answer; each time, the process "
            "counts in its own store and asks it again 5 s later.",
        ),
        emails_suppressed=Counter(
            "slotgraph_emails_suppressed_total",
            "Customer emails not sent: their inbox had the app's limit of them in the last hour "
            "(SLOTGRAPH_CUSTOMER_EMAILS_PER_HOUR).",
        ),
    )


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def record_changes(changes: list[tuple[str, str]]) -> None:
    """Count committed booking changes: `(graph, action)`, where action `create` is a new one."""
    m = get()
    for graph, action in changes:
        if action == "create":
            m.bookings_created.labels(graph).inc()
        else:
            m.transitions.labels(graph, action).inc()


def serve_http(port: int, host: str) -> None:
    """A separate `slotgraph worker` process serves its own /metrics on `port`."""
    from prometheus_client import start_http_server

    get()
    start_http_server(port, addr=host)


def exposition(extra: dict[str, tuple[str, float]]) -> bytes:
    """The text format: this process's metrics, or every process's in multiprocess mode, plus
    gauges computed at scrape time (`name: (help, value)`)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.multiprocess import MultiProcessCollector

    get()  # every metric exists (with its HELP line) before the first sample
    registry: Any = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    text = generate_latest(registry)
    scrape = CollectorRegistry()

    class _Now:
        def collect(self) -> Iterator[GaugeMetricFamily]:
            for name, (help_, value) in extra.items():
                yield GaugeMetricFamily(name, help_, value=value)

    scrape.register(_Now())
    return text + generate_latest(scrape)
