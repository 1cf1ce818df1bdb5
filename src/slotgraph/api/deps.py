"""Request dependencies: the session, the caller, the clock."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Request, Response
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.api.ratelimit import Limiter
from slotgraph.errors import Forbidden, NotModified, Unauthenticated, none_match
from slotgraph.services import apps, customer_tokens
from slotgraph.services.common import FOREIGN_TAG, Principal
from slotgraph.services.common import IfMatch as IfMatchValue
from slotgraph.services.idempotency import KEYED

# Declared for the OpenAPI page ("Authorize" button); parsing is done below.
_auth_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="`Bearer sk_...` / `Bearer pk_...`, or HTTP Basic with an empty user and the key "
    "as the password. A customer token (`Bearer ct_...`) opens its own booking only.",
)

_CACHE_SECONDS = 30.0
PRINCIPAL = "principal"  # where the guard leaves the caller in the request state


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # A request with an Idempotency-Key runs in the transaction api/idempotency.py opened: the
    # service's own transactions join it (no savepoint round trips; a failure rolls it all back),
    # and the middleware's one commit stores the answer with the change. A route that answers in
    # its own write gets a session of its own, which carries the request's `Keyed`.
    conn = getattr(request.state, "idempotency_connection", None)
    if conn is not None:
        async with AsyncSession(
            bind=conn,
            join_transaction_mode="rollback_only",
            expire_on_commit=False,
            autoflush=False,
        ) as session:
            yield session
        return
    keyed = getattr(request.state, "idempotency_keyed", None)
    sessions = request.app.state.sessions
    session = sessions() if keyed is None else sessions(info={KEYED: keyed})
    try:
        yield session
    finally:
        # A session the route never used (no transaction, no objects: an availability search
        # on PostgreSQL reads on the driver) holds nothing to close; closing it cost a greenlet
        # hop, 20-50 us a request.
        if session.in_transaction() or session.identity_map:
            await session.close()


Session = Annotated[AsyncSession, Depends(get_session)]


async def get_now(request: Request) -> datetime:
    # async: a plain `def` dependency would cost a thread-pool hop on every request
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


Now = Annotated[datetime, Depends(get_now)]


def key_from_header(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("The Basic credentials are not valid base64.") from None
        if user == "" and password:
            return password
        raise Unauthenticated("Use HTTP Basic with an empty user name and the key as password.")
    raise Unauthenticated("Use `Authorization: Bearer <key>`.")


def client_ip(scope: Any) -> str:
    """The client's address, as every rule that counts or tells visitors apart reads it (the
    rate limits, the bad-key limit, an Idempotency-Key's caller): the connection's, or the one a
    trusted proxy forwarded (uvicorn puts it in the scope: SLOTGRAPH_FORWARDED_ALLOW_IPS)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


# The tour's 401 when `serve` had made its app before SLOTGRAPH_BOOTSTRAP_SECRET_KEY was set
# (README): "Unknown API key." said nothing of where keys come from.
UNKNOWN_KEY = (
    "Unknown API key. Keys are shown once: by `slotgraph serve` on its first start (which alone "
    "reads SLOTGRAPH_BOOTSTRAP_SECRET_KEY), and by `slotgraph apps create NAME`."
)


async def principal_for(app: Any, authorization: str | None, client_ip: str) -> Principal:
    """Whoever an `Authorization` header stands for (an API key, or a customer token `ct_...`;
    401 if none or unknown), from a short per-process cache or the database. api/guard.py calls
    this before any body is read. Unknown keys and malformed credentials count against the
    client's address; past the server's `bad_key_limit` a key is not looked up (429) unless it
    was valid lately (api/ratelimit.py)."""
    if not authorization:
        raise Unauthenticated("An API key is required: `Authorization: Bearer <key>`.")
    limiter: Limiter = app.state.limiter
    try:
        key = key_from_header(authorization)
    except Unauthenticated:
        await limiter.before_lookup(client_ip, None)
        await limiter.lookup_failed(client_ip, None, was_known=False)
        raise
    cache: dict[str, tuple[float, Principal]] = app.state.key_cache
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    was_known = await limiter.before_lookup(client_ip, key)
    async with app.state.sessions() as session:
        if key.startswith(customer_tokens.CUSTOMER_PREFIX):
            found = await customer_tokens.principal_for_token(session, key)
            unknown = "Unknown customer token."
        else:
            found = await apps.authenticate(session, key=key)
            unknown = UNKNOWN_KEY
    if found is None:
        await limiter.lookup_failed(client_ip, key, was_known=was_known)
        raise Unauthenticated(unknown)
    principal = found
    await limiter.lookup_succeeded(key)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (time.monotonic() + _CACHE_SECONDS, principal)
    return principal


async def get_caller(
    request: Request,
    authorization: Annotated[str | None, Depends(_auth_header)],
) -> Principal:
    """Whoever the credentials stand for: an API key, or a customer token (`ct_...`)."""
    # The guard (api/guard.py) has authenticated every route that names a key before its body.
    known: Principal | None = getattr(request.state, PRINCIPAL, None)
    if known is not None:
        return known
    return await principal_for(request.app, authorization, client_ip(request.scope))


Caller = Annotated[Principal, Depends(get_caller)]
_CUSTOMER_SCOPE = (
    "A customer token opens its own booking only: GET /v1/bookings/{id}, a new time or the "
    "language of its emails (PUT /v1/bookings/{id}) and PUT /v1/bookings/{id}/cancel_by_customer."
)

# Which callers each kind of route admits: the dependencies below and the guard (which checks
# before the body is read) both ask `admit`.
Need = Literal["secret", "any", "secret_or_customer", "caller", "none"]


def admit(principal: Principal, need: Need) -> None:
    """Raise 403 unless `principal` may call a route that needs `need`."""
    if principal.kind == "customer" and need in ("secret", "any"):
        raise Forbidden(_CUSTOMER_SCOPE)
    if principal.kind == "public" and need in ("secret", "secret_or_customer"):
        raise Forbidden(
            "This needs the secret key"
            + (" (or the booking's customer token)" if need == "secret_or_customer" else "")
            + "; the public key may only read resources and create bookings."
        )


async def get_principal(principal: Caller) -> Principal:
    """An API key (secret or public). A customer token is refused here: 403."""
    admit(principal, "any")
    return principal


AnyKey = Annotated[Principal, Depends(get_principal)]


async def require_secret(principal: Caller) -> Principal:
    admit(principal, "secret")
    return principal


SecretKey = Annotated[Principal, Depends(require_secret)]


async def require_secret_or_customer(principal: Caller) -> Principal:
    admit(principal, "secret_or_customer")
    return principal


# The booking routes a customer token may use; the services limit it to its booking and its
# customer's actions (services/customer_tokens.py).
SecretOrCustomer = Annotated[Principal, Depends(require_secret_or_customer)]


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


async def get_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='The `ETag` (`"<version>"`) of the object as you read it, or `*`. A '
            "stale one is 412 precondition_failed."
        ),
    ] = None,
) -> IfMatchValue:
    """`If-Match` as a version. A tag that is not one of ours can match nothing: the service
    answers 412 once the request is otherwise valid (services/common.py)."""
    if if_match is None:
        return None
    tags = _etags(if_match)
    if "*" in tags:
        return "*"
    for tag in tags:
        value = tag.removeprefix('"').removesuffix('"')
        if tag.startswith('"') and tag.endswith('"') and value.isdigit():
            return int(value)
    return FOREIGN_TAG


IfMatch = Annotated[IfMatchValue, Depends(get_if_match)]


@dataclass(frozen=True)
class Tagger:
    request: Request
    response: Response

    def __call__(self, version: int) -> None:
        """Set `ETag` from the object's version; on a GET whose `If-None-Match` names it,
        answer 304 Not Modified instead."""
        tag = f'"{version}"'
        self.response.headers["ETag"] = tag
        given = self.request.headers.get("if-none-match")
        if self.request.method in ("GET", "HEAD") and none_match(tag, given):
            raise NotModified("Not modified.", etag=tag)


async def get_tagger(
    request: Request,
    response: Response,
    if_none_match: Annotated[
        str | None,
        Header(
            description='ETags (`"<version>"`) you hold: 304 Not Modified if one is current. '
            "Declared here for the API description; read from the request."
        ),
    ] = None,
) -> Tagger:
    return Tagger(request, response)


ETag = Annotated[Tagger, Depends(get_tagger)]
