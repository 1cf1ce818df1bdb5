"""Settings from the environment, prefix `SLOTGRAPH_`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from slotgraph.logs import LogFormat

DEFAULT_DATABASE_URL = "sqlite:///./data/slotgraph.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTGRAPH_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    bootstrap_secret_key: SecretStr | None = None
    # Connections per server process (PostgreSQL). SQLite serialises writers anyway.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_connect_timeout_seconds: float = 5.0  # a database that does not answer is 503 after this
    db_pool_timeout_seconds: float = 30.0  # waiting for a free pooled connection
    # PostgreSQL: the longest a statement waits for a lock another transaction holds (a psql
    # session left in a transaction, a manual LOCK TABLE); then 503 database_busy. 0: no limit.
    # PostgreSQL refuses every connection with a value outside 0 to 2^31-1 ms (a negative one
    # was 503 "cannot be reached" on every request): refused here, at start, by name.
    db_lock_timeout_seconds: float = Field(default=10.0, ge=0, le=2_147_483)
    log_format: LogFormat = "auto"  # json | text | auto (text on a terminal, JSON otherwise)
    metrics_token: SecretStr | None = None  # if set, /metrics wants `Authorization: Bearer <it>`
    worker_metrics_port: int | None = None  # `slotgraph worker` serves /metrics on this port
    require_worker_heartbeat_seconds: float = 60.0  # /readyz: a worker looped this recently
    # Webhooks and the worker
    webhook_allow_private_networks: bool = False
    run_worker: bool = True  # `serve` runs the worker loop in-process (`--no-worker` turns it off)
    worker_poll_seconds: float = 0.2  # idle wait between polls for new events
    worker_timer_seconds: float = 5.0  # how often timers (timeout, expire, complete) run
    worker_lease_seconds: float = 60.0  # a claimed delivery returns to the pool after this
    worker_batch: int = 32  # deliveries sent concurrently per worker
    # A send in flight this long is slow: it leaves the send slots (up to `worker_batch` such
    # sends, on connections of their own), and its target gets no new send while it has
    # `worker_slow_target_sends` in flight and one of them slow (docs/webhooks.md, ADR 0003).
    worker_slow_send_seconds: float = 2.0
    worker_slow_target_sends: int = 4
    worker_shutdown_seconds: float = 10.0  # on SIGTERM, finish in-flight sends for this long
    # On SIGTERM, requests in flight may finish for this long, then are cancelled: a client that
    # never finishes sending its request must not keep the server up (uvicorn waits forever).
    shutdown_seconds: int = Field(default=30, ge=1)
    # Calendars (docs/calendars.md). Fernet key(s), comma-separated, newest first: they encrypt
    # CalDAV passwords at rest and sign feed URLs.
    encryption_key: SecretStr | None = None
    calendar_sync_interval: timedelta = timedelta(minutes=5)  # seconds or ISO 8601 (PT5M)
    # What one pull may take, its wait for a CalDAV thread included (then it fails and is
    # retried); a sync's lease is this plus `worker_lease_seconds` (for the write), so no other
    # worker takes a sync still in flight (before: 60 s of lease for up to 300 s of server).
    calendar_sync_seconds: float = Field(default=330.0, gt=0)
    # The address clients reach this server at (feed URLs); default: the request's own.
    public_url: str | None = None
    # Booking pages (docs/booking-pages.md): signs the forms' CSRF tokens when set.
    csrf_secret: SecretStr | None = None
    # Emails (docs/emails.md). smtp://[user:password@]host[:port][?starttls=true] or smtps://
    # (TLS from the start); unset: each email is written to `mail_dir` as an .eml file.
    smtp_url: SecretStr | None = None
    mail_from: str = "slotgraph <bookings@localhost>"
    mail_dir: str = "./data/mail"
    mail_templates_dir: str | None = None  # templates here override the built-in ones
    smtp_timeout_seconds: float = 30.0
    # Customer emails one app may send one inbox in a sliding hour; the rest are not sent and
    # are recorded as suppressed (ADR 0020, docs/emails.md). 0: no limit.
    customer_emails_per_hour: int = Field(default=20, ge=0, le=10_000)
    # Bounds of one request (docs/security.md): a longer body is 413 before it is read further,
    # deeper JSON is 422.
    max_body_bytes: int = 64 * 1024
    max_json_depth: int = 32
    # Slow clients (docs/security.md, api/connections.py): a request's head must arrive within
    # this (408 and closed), its body within that once the guard reads it (408); at most this
    # many connections open from one address (per process; loopback and proxies not counted).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # An answer that outran its client (uvicorn's write buffer full) must move: in each stretch
    # of send_timeout_seconds at least send_min_bytes_per_second x that many bytes must leave
    # the process, and it must have drained within send_max_seconds of outrunning it; else the
    # connection is reset (a client that does not read held it for ever).
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    send_min_bytes_per_second: int = Field(default=16 * 1024, ge=0)
    send_max_seconds: float = Field(default=300.0, gt=0)
    max_connections_per_address: int = Field(default=256, ge=0)  # 0: not counted
    # Rate limits (the numbers are app settings): counted in Redis when set (shared by every
    # process), else in this process, in at most this many counters (about 6 MB).
    redis_url: str | None = None
    # What one ask of Redis may take in all (seconds); a slower one is a failure: counted in this
    # process for 5 s (api/ratelimit.py REDIS_TIMEOUT).
    redis_timeout_seconds: float = Field(default=0.1, gt=0, le=60)
    rate_limit_memory_keys: int = 20_000
    # The most requests a minute an app may set for either key (1,000 a second); a higher value
    # stored before is counted as this.
    max_app_rate_limit: int = Field(default=60_000, ge=1)
    # Unknown keys (and malformed credentials) a minute from one client address; past it a key
    # is not looked up (429) unless it was valid in the last day (docs/security.md).
    bad_key_limit: int = Field(default=20, ge=1)
    # Requests a minute from one client address with every public key, customer token and page
    # together (beside each key's own limit): harvested public keys do not multiply it. An app
    # whose own public limit is higher gets its own at the address (ADR 0021). 0: not counted.
    address_rate_limit: int = Field(default=2_400, ge=0)
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto name the visitor (addresses or
    # networks, comma-separated, or *); unset: none, a visitor is its connection's address.
    forwarded_allow_ips: str | None = None
