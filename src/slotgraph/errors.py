"""The error tree. Each error carries its HTTP status and stable machine `code`.

One handler in `api/app.py` renders any of them as RFC 9457 problem+json; domain and services
raise them without knowing about HTTP otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class SlotgraphError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InternalError(SlotgraphError):
    """500: a fault of the code (an error no handler took); logged with its traceback."""

    title = "Internal Server Error"


class BadRequest(SlotgraphError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthenticated(SlotgraphError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(SlotgraphError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(SlotgraphError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(SlotgraphError):
    status = 409
    code = "conflict"
    title = "Conflict"


class SlotUnavailable(Conflict):
    code = "slot_unavailable"
    title = "Slot unavailable"


class InvalidAction(Conflict):
    code = "invalid_action"
    title = "Action not allowed in this state"


class SeatsFull(Conflict):
    code = "seats_full"
    title = "No seats left"


class BookingWindowClosed(Conflict):
    code = "booking_window_closed"
    title = "Booking window closed"


class InThePast(Conflict):
    code = "in_the_past"
    title = "In the past"


class CancelWindowClosed(Conflict):
    code = "cancel_window_closed"
    title = "Cancellation window closed"


class PaymentExpired(Conflict):
    code = "payment_expired"
    title = "Payment deadline passed"


class NotModifiable(Conflict):
    code = "not_modifiable"
    title = "Booking cannot be modified"


class ResourceInUse(Conflict):
    code = "resource_in_use"
    title = "Resource has active bookings"


class LimitReached(Conflict):
    """An app already has as many of something as it may (docs/security.md)."""

    code = "limit_reached"


class ResourceArchived(Conflict):
    code = "resource_archived"
    title = "Resource is archived"


class ClientExists(Conflict):
    code = "client_exists"
    title = "A client with this email exists"


class NotModified(SlotgraphError):
    """304 for `If-None-Match`: the client's copy is current (answered without a body)."""

    status = 304
    code = "not_modified"
    title = "Not modified"


def none_match(etag: str, if_none_match: str | None) -> bool:
    """Whether `If-None-Match` names the current `etag` (then 304): `*`, or the tag compared
    weakly (RFC 9110 13.1.2), so `W/"x"` matches `"x"`. A proxy that compresses answers (nginx
    with gzip) weakens the ETags it passes on, and clients send back what they were given."""
    if not if_none_match:
        return False
    given = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in given or etag.removeprefix("W/") in given


class PreconditionFailed(SlotgraphError):
    """412: `If-Match` named a version that is no longer the stored one."""

    status = 412
    code = "precondition_failed"
    title = "Precondition failed"


class PreconditionRequired(SlotgraphError):
    """428: the app requires `If-Match` on changes (`require_if_match`)."""

    status = 428
    code = "precondition_required"
    title = "Precondition required"


class ConcurrentUpdate(Conflict):
    """PostgreSQL: a deadlock or serialisation failure; nothing was written."""

    code = "concurrent_update"

    def __init__(
        self, detail: str = "Another request changed the same data at the same time; try again."
    ) -> None:
        super().__init__(detail)


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    title = "A request with this Idempotency-Key is in progress"


class IdempotencyKeyReused(SlotgraphError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused for another request"


class DatabaseUnavailable(SlotgraphError):
    """The database cannot be reached (down, restarting, refusing connections): 503, retry."""

    status = 503
    code = "database_unavailable"
    title = "Database unavailable"
    retry_after = 5

    def __init__(
        self, detail: str = "The database cannot be reached right now; try again shortly."
    ) -> None:
        super().__init__(detail)


class DatabaseBusy(DatabaseUnavailable):
    """SQLite: another process held the write lock for the whole busy timeout (30 s);
    PostgreSQL: another transaction held a lock past `db_lock_timeout_seconds` (10 s), or a
    statement ran past the operator's statement_timeout: 503."""

    code = "database_busy"
    title = "Service Unavailable"
    retry_after = 1

    def __init__(self, detail: str = "The database is busy; try again.") -> None:
        super().__init__(detail)


class ValidationFailed(SlotgraphError):
    """422 with field paths, for rules checked outside the request schema (unknown ids, shapes)."""

    status = 422
    code = "validation_error"
    title = "Validation failed"

    def __init__(
        self,
        errors: list[tuple[str, str]],
        *,
        where: str = "body",
        types: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors
        self.where = where  # the part of the request the fields are in: body, query, path
        # each field's error type, as pydantic names it (`less_than_equal`); a rule of ours that
        # has no pydantic name is pydantic's `value_error` (what a validator's ValueError gets)
        self.types = dict(types or {})

    def type_of(self, field: str) -> str:
        return self.types.get(field, "value_error")

    @classmethod
    def one(cls, field: str, message: str, *, where: str = "body") -> ValidationFailed:
        return cls([(field, message)], where=where)


class RateLimited(SlotgraphError):
    """429: too many requests a minute (the app setting `rate_limits`); `headers` carries
    `Retry-After` and `RateLimit-*`."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.headers = headers


class PayloadTooLarge(SlotgraphError):
    """413: the request body is over the server's limit (`SLOTGRAPH_MAX_BODY_BYTES`)."""

    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class RequestTimeout(SlotgraphError):
    """408: the request body did not arrive within the server's `SLOTGRAPH_BODY_TIMEOUT_SECONDS`
    (the connection is closed after the answer)."""

    status = 408
    code = "request_timeout"
    title = "Request timeout"


class CalendarAuthFailed(SlotgraphError):
    status = 422
    code = "calendar_auth_failed"
    title = "The calendar server refused the credentials"


class CalendarUnreachable(SlotgraphError):
    status = 422
    code = "calendar_unreachable"
    title = "The calendar could not be reached"


class EncryptionKeyMissing(SlotgraphError):
    status = 409
    code = "encryption_key_missing"
    title = "SLOTGRAPH_ENCRYPTION_KEY is not set"
