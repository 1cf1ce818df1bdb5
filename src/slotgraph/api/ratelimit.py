"""Rate limits per key, and per client IP address for the public key (docs/security.md).

Everything but the secret key (public keys, customer tokens, pages and feeds) is counted twice:
per caller and address, and per address across all callers (`address_limit`, ADR 0021), so an
address holding the public keys of many apps gets no more than one address's limit.

Unknown keys are counted too, per client address (`bad_key_limit` a minute): past it, a key is
not even looked up (429), unless it is one this limiter saw valid in the last day, so a client
behind the same address as an attacker keeps working.

The `limits` library counts, with its sliding-window counter (two counters per caller and
minute, the previous one weighted by how much of it is still inside the last 60 s). The counts
live in this process by default, in a store bounded in keys (so in bytes: every key is short);
with `SLOTGRAPH_REDIS_URL` they live in Redis, shared by every process and machine. A Redis that
does not answer (one warning a minute, and each failure counted in the metric
`slotgraph_rate_limit_store_failures_total`) is left alone for `_SHARED_RETRY_SECONDS`, and
meanwhile each process counts in its own bounded store, as without Redis: a limiter outage never
takes the API down, nor slows every request by Redis' timeout, nor lifts the limits. A Redis that
answers, but slower than `REDIS_TIMEOUT` an ask, is failing: its answers would be added to
every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from slotgraph import metrics
from slotgraph.addresses import visitor
from slotgraph.errors import RateLimited
from slotgraph.services.common import Principal

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

log = logging.getLogger("slotgraph.ratelimit")
_WARN_EVERY = 60.0
# What one ask of Redis may take in all (connect, redis-py's retries, each round trip), and each
# socket operation in it, by default (the setting redis_timeout_seconds): a Redis on the same
# network answers in a millisecond. Past it, Redis is failing (and let alone for
# `_SHARED_RETRY_SECONDS`). It was 0.5 s on each socket operation only: a Redis that answered in
# 0.3 s never failed, and added 0.3 s to each of a request's three or four asks, about a second
# a request (docs/operations.md, "Bad days").
REDIS_TIMEOUT = 0.1  # seconds
# After Redis failed to answer, it is asked again this much later; meanwhile each process counts
# in its own store. Before, every request asked it, and waited its timeout: 0.5-1.5 s a request
# added while Redis hung, and nothing was limited (docs/operations.md, "Bad days").
_SHARED_RETRY_SECONDS = 5.0
# redis-py's own socket timeouts, in multiples of the limiter's bound: a backstop, never the
# timeout that decides (Limiter.create).
_BACKSTOP = 10
_T = TypeVar("_T")
KNOWN_SECONDS = 24 * 3600  # how long a key that was valid may still be looked up from anywhere


@dataclass(frozen=True)
class Verdict:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "Retry-After": str(self.reset_seconds),
        }


class PerAddress(RateLimitItemPerMinute):
    """The limit of one client address across every public key, token and page: one counter
    whatever the limit it is judged by (`limits` names a counter by its amount too), so an app
    whose own public limit is higher is judged by that, and every other by the server's."""

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join([self.namespace, "address", *map(str, identifiers)])


class BoundedMemoryStorage(MemoryStorage):
    """limits' in-process store, holding at most `max_keys` counters.

    A counter is a key of at most ~150 characters (key id, IP address, window), an int and an
    expiry: with the default 20,000 keys the store stays under 10 MB (6 MB measured with
    IPv6 addresses). When it is full, the
    expired counters go first, then the quarter that expires soonest (their callers simply start
    counting again). Counting here never scans the whole store, unlike the parent's timer.
    """

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        if self.expirations.get(key, 0) <= now:  # new, or its window has passed
            self.storage.pop(key, None)
            if key not in self.expirations and len(self.expirations) >= self.max_keys:
                self._evict(now)
            self.expirations[key] = now + expiry
        self.storage[key] += amount
        return self.storage[key]

    async def decr(self, key: str, amount: int = 1) -> int:
        if key in self.storage:
            self.storage[key] = max(self.storage[key] - amount, 0)
        return self.storage.get(key, 0)

    def _evict(self, now: float) -> None:
        expired = [k for k, at in self.expirations.items() if at <= now]
        keep = self.max_keys * 3 // 4
        if len(self.expirations) - len(expired) > keep:
            by_expiry = sorted(self.expirations, key=self.expirations.__getitem__)
            expired = by_expiry[: len(by_expiry) - keep]
        for key in expired:
            self.expirations.pop(key, None)
            self.storage.pop(key, None)
        self.locks.clear()  # the parent makes one per key read; none is held between awaits


class Limiter:
    def __init__(
        self,
        storage: Storage,
        pool: ConnectionPool | None = None,
        *,
        bad_key_limit: int = 20,
        address_limit: int = 2_400,
        max_per_minute: int = 60_000,
        local_keys: int = 20_000,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        self.storage = storage
        self.timeout = timeout  # what an ask of the shared store may take in all
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.pool = pool
        # Where counting goes while the shared store (Redis) does not answer: this process.
        self.local: tuple[SlidingWindowCounterRateLimiter, Storage] = (self.strategy, storage)
        if pool is not None:
            fallback = BoundedMemoryStorage(local_keys)
            self.local = (SlidingWindowCounterRateLimiter(fallback), fallback)
        self._shared_down_until = 0.0
        self.bad_keys = RateLimitItemPerMinute(bad_key_limit)
        self.address_limit = address_limit  # 0: an address is not counted across callers
        # The operator's ceiling (`max_app_rate_limit`): an app's value stored before it was
        # set counts as the ceiling.
        self.max_per_minute = max_per_minute
        self._warned = 0.0

    @classmethod
    def create(
        cls,
        *,
        redis_url: str | None,
        memory_keys: int,
        bad_key_limit: int = 20,
        address_limit: int = 2_400,
        max_per_minute: int = 60_000,
        redis_timeout: float = REDIS_TIMEOUT,
    ) -> Limiter:
        if not redis_url:
            return cls(
                BoundedMemoryStorage(memory_keys),
                bad_key_limit=bad_key_limit,
                address_limit=address_limit,
                max_per_minute=max_per_minute,
            )
        # redis-py only where it is used: a tenth of a second of every server start, and most
        # servers count in memory.
        from redis.asyncio import ConnectionPool

        # Our own pool. The limiter's bound of an ask (`timeout`, around all of it) is the
        # timeout that fires: redis-py's own, per socket operation, only backs it (ten times
        # it). Equal, the two raced on a loaded machine (each fired first in turn), and the log
        # named the outage by whichever won (_warn names both alike now).
        backstop = _BACKSTOP * redis_timeout
        pool = ConnectionPool.from_url(
            redis_url.removeprefix("async+"),
            socket_timeout=backstop,
            socket_connect_timeout=backstop,
        )
        options: dict[str, Any] = {"connection_pool": pool}  # typed by limits as scalars only
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix="slotgraph",
            **options,
        )
        return cls(
            storage,
            pool,
            bad_key_limit=bad_key_limit,
            address_limit=address_limit,
            max_per_minute=max_per_minute,
            local_keys=memory_keys,
            timeout=redis_timeout,
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def check(self, principal: Principal, client_ip: str) -> Verdict | None:
        """Count one request; raise RateLimited if it is one too many."""
        limits = principal.settings.rate_limits
        address: tuple[PerAddress, str] | None = None
        if principal.kind == "secret":
            item = RateLimitItemPerMinute(min(limits.secret_per_minute, self.max_per_minute))
            who: tuple[str, ...] = (str(principal.key_id),)
        else:
            # The public key per client address; customer tokens (no key) per app and address,
            # all of its bookings' tokens together: counted per booking, a visitor holding many
            # tokens (a public create answers one) got the limit once per token.
            item = RateLimitItemPerMinute(min(limits.public_per_minute, self.max_per_minute))
            caller = principal.key_id or f"customer:{principal.app_id}"
            who = (str(caller), visitor(client_ip))
            if self.address_limit:  # and the address across them all (ADR 0021)
                address = (PerAddress(max(self.address_limit, item.amount)), visitor(client_ip))

        async def count(strategy: SlidingWindowCounterRateLimiter, _: Storage) -> Any:
            # The address is asked first and charged last: a request its caller's own limit
            # refuses takes nothing from the address (one key's flood takes at most that key's
            # limit from the others at its address), and one the address refuses nothing from
            # its caller's.
            if address is not None and not await strategy.test(*address):
                return address[0], await strategy.get_window_stats(*address)
            if not await strategy.hit(item, *who):
                return item, await strategy.get_window_stats(item, *who)
            if address is not None and not await strategy.hit(*address):
                return address[0], await strategy.get_window_stats(*address)
            return None

        refused = await self._on_shared_or_local(count)
        if refused is None:
            return None
        limit, stats = refused
        verdict = Verdict(
            limit=limit.amount,
            remaining=stats.remaining,
            reset_seconds=max(1, math.ceil(stats.reset_time - time.time())),
        )
        if isinstance(limit, PerAddress):
            why = (
                f"More than {limit.amount} requests a minute from this address with public keys,"
                " customer tokens and booking pages together"
            )
            setting = "the server's address_rate_limit"
        else:
            why = f"More than {limit.amount} requests a minute with this key" + (
                "" if principal.kind == "secret" else " from this address"
            )
            setting = "the app setting rate_limits"
        raise RateLimited(
            f"{why}; try again in {verdict.reset_seconds} s ({setting}).",
            headers=verdict.headers(),
        )

    async def before_lookup(self, client_ip: str, key: str | None) -> bool:
        """Before a key is looked up: raise RateLimited if this address sent more than
        `bad_key_limit` unknown keys in the last minute, unless `key` was valid within
        KNOWN_SECONDS (None: a credential that cannot be a key). True: let through only because
        it was known (a failure then forgets it)."""
        address = visitor(client_ip)

        async def look(strategy: SlidingWindowCounterRateLimiter, storage: Storage) -> Any:
            if await strategy.test(self.bad_keys, "bad_key", address):
                return False
            if key is not None and await storage.get(_known(key)):
                return True
            return await strategy.get_window_stats(self.bad_keys, "bad_key", address)

        stats = await self._on_shared_or_local(look)
        if isinstance(stats, bool):
            return stats
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        verdict = Verdict(limit=self.bad_keys.amount, remaining=0, reset_seconds=reset)
        raise RateLimited(
            f"More than {self.bad_keys.amount} unknown keys a minute from this address; try "
            f"again in {reset} s (the server's bad_key_limit).",
            headers=verdict.headers(),
        )

    async def lookup_failed(self, client_ip: str, key: str | None, *, was_known: bool) -> None:
        """Count an unknown key (or a malformed credential) against its address."""

        async def count(strategy: SlidingWindowCounterRateLimiter, storage: Storage) -> None:
            await strategy.hit(self.bad_keys, "bad_key", visitor(client_ip))
            if was_known and key is not None:
                await storage.clear(_known(key))  # revoked since: no longer vouched for

        await self._on_shared_or_local(count)

    async def lookup_succeeded(self, key: str) -> None:
        """Remember that `key` was valid, so an address over the bad-key limit may still use it."""

        async def remember(_: SlidingWindowCounterRateLimiter, storage: Storage) -> None:
            await storage.incr(_known(key), KNOWN_SECONDS)

        await self._on_shared_or_local(remember)

    async def _on_shared_or_local(
        self, work: Callable[[SlidingWindowCounterRateLimiter, Storage], Awaitable[_T]]
    ) -> _T:
        """`work` on the shared store, given `self.timeout` in all (connecting, redis-py's
        own retries, every round trip); on this process's own store while the shared one is
        let alone after it failed or was too slow to answer (and for the request that found it
        so)."""
        if self.local[1] is not self.storage and time.monotonic() >= self._shared_down_until:
            try:
                async with asyncio.timeout(self.timeout):
                    return await work(self.strategy, self.storage)
            except (StorageError, TimeoutError) as exc:
                metrics.get().rate_limit_store_failures.inc()  # what an operator alerts on
                self._warn(exc)
                self._shared_down_until = time.monotonic() + _SHARED_RETRY_SECONDS
        return await work(*self.local)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            # asyncio's TimeoutError says nothing: the bound it hit is what the operator needs.
            # redis-py's own timeout (a StorageError) is the same outage, and says so alike:
            # which of the two fires first is a race on a loaded machine.
            why = f"did not answer within {self.timeout:g} s" if _timed_out(exc) else str(exc)
            log.warning(
                "rate limit store unavailable, counting in this process; asked again every "
                "%.0f s: %s",
                _SHARED_RETRY_SECONDS,
                why,
            )


def _timed_out(exc: Exception) -> bool:
    """Whether `exc` is an ask of the shared store timing out: the limiter's bound, or
    redis-py's socket timeout (wrapped by `limits` in a StorageError)."""
    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, StorageError):
        from redis.exceptions import TimeoutError as RedisTimeout  # imported with the store

        return isinstance(exc.storage_error, RedisTimeout)
    return False


def _known(key: str) -> str:
    """The store's name for "this key was valid": a hash, so the store holds no key."""
    digest = hashlib.sha256(b"slotgraph known key\0" + key.encode("utf-8", "surrogatepass"))
    return "known_key/" + digest.hexdigest()[:32]
