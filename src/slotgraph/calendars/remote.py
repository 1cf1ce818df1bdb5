"""The CalDAV side, through the `caldav` library (no hand-written WebDAV). Blocking calls:
the worker and the API run them in threads of their own (`call`, threads.py).

Every call starts with the SSRF guard's verdict already given by the caller (webhooks/ssrf.py);
here the client is kept from going anywhere else: no RFC 6764 discovery, no redirects, no
proxy or .netrc from the environment.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
import uuid
from collections.abc import Collection, Coroutine, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from slotgraph.calendars import threads
from slotgraph.calendars.pull import CONNECTION_MARK, PUSHED_MARK

# Which app's calls run now, in the CalDAV threads (`call`, `THREADS`, `PER_APP`): threads.py.
from slotgraph.calendars.threads import PER_APP as PER_APP
from slotgraph.calendars.threads import THREADS as THREADS
from slotgraph.calendars.threads import call as call
from slotgraph.webhooks.ssrf import UrlNotAllowed, refuse_private

if TYPE_CHECKING:
    from caldav.collection import Calendar
    from caldav.lib.url import URL

# `caldav` (with lxml and niquests) is imported on first use, not at start: API processes start
# faster, which matters to `serve --workers N` under load.

TIMEOUT_SECONDS = 60  # a pull of a big calendar on a loaded server takes its time
MULTIGET_BATCH = 200
# What one call (a probe, a pull, a push) may take of the server's answers, all of them
# together, as decoded: before, the client read every answer whole, and decompressed it, so
# an app's CalDAV server could fill the worker's memory (serve's, for every app) with one
# endless or gzip-bombed answer. And the time it may take once the answers come: a server
# that trickles its body a byte at a time under the read timeout held a thread for good.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
DEADLINE_SECONDS = 300.0
T = TypeVar("T")


class RemoteError(Exception):
    """A CalDAV call failed; `kind` says how: auth, unreachable, not_found, or protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Account:
    url: str
    username: str
    password: str = field(repr=False)


@dataclass
class Pulled:
    """What changed since `sync_token`: changed objects (URL -> iCalendar text) and deleted
    URLs; `full` when this is the whole calendar (first sync, or the token was not usable)."""

    sync_token: str | None
    full: bool
    changed: dict[str, str]
    deleted: set[str]


class TooMuch(OSError):
    """The server sent more than one call may read, or took longer than it may take."""


def _explain(exc: Exception) -> RemoteError:
    from caldav.lib import error

    if isinstance(exc, TooMuch):
        return RemoteError("protocol", str(exc))
    if isinstance(exc, NotImplementedError):  # caldav: no authentication scheme it knows
        return RemoteError(
            "auth", f"The server asks for an authentication we do not speak: {exc}"[:400]
        )
    if not isinstance(exc, (error.DAVError, OSError)):  # lxml's, on an answer that is not XML
        return RemoteError("protocol", f"The CalDAV server's answer is not XML: {exc}"[:400])
    if isinstance(exc, error.AuthorizationError):
        return RemoteError("auth", "The server refused the username or password (401/403).")
    if isinstance(exc, error.NotFoundError):
        return RemoteError("not_found", "No calendar at this URL (404).")
    if isinstance(exc, error.DAVError):
        return RemoteError("protocol", f"The CalDAV server answered with an error: {exc}"[:400])
    return RemoteError(
        "unreachable", f"Could not reach the server: {type(exc).__name__}: {exc}"[:400]
    )


def _done(value: T | Coroutine[Any, Any, T]) -> T:
    """The blocking client's answer (the library's types also allow its async twin's)."""
    assert not inspect.iscoroutine(value)
    return cast(T, value)


def _url(cal: Calendar) -> URL:
    assert cal.url is not None
    return cal.url


@functools.cache
def _public_only() -> type[Any]:
    """A resolver for the client's connections that refuses non-public addresses (the webhook
    SSRF guard's rule, webhooks/ssrf.py). The URL is checked before each call, but the client
    resolves the name again to connect: a name that answered a public address to the check and a
    private one to the client (DNS rebinding) reached the private network. The client's
    resolver is the one place that sees the address each connection uses (IP literals too)."""
    from urllib3.contrib.resolver.system import SystemResolver

    class PublicOnly(SystemResolver):
        def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            infos = super().getaddrinfo(host, port, *args, **kwargs)
            name = host.decode() if isinstance(host, bytes) else str(host)
            try:
                refuse_private(name, {str(info[4][0]) for info in infos})
            except UrlNotAllowed as exc:
                raise OSError(str(exc)) from exc
            return infos

    return PublicOnly


@functools.cache
def _bounded() -> type[Any]:
    """The client's HTTP session: each answer is read here, chunk by chunk as decoded, within
    the call's `MAX_ANSWER_BYTES` and `DEADLINE_SECONDS` (`TooMuch` past either)."""
    import niquests

    class Bounded(niquests.Session):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.left = MAX_ANSWER_BYTES
            self.seconds = DEADLINE_SECONDS
            self.deadline = time.monotonic() + DEADLINE_SECONDS
            self.cut = threads.cut.get()  # set when the call is slow and keeps its slot

        def send(self, request: Any, **kwargs: Any) -> Any:
            self._in_time()
            streamed = kwargs.get("stream")
            kwargs["stream"] = True
            response = super().send(request, **kwargs)
            if not streamed:
                try:
                    self._read(response)
                finally:
                    response.close()
            return response

        def _read(self, response: Any) -> None:
            chunks = []
            for chunk in response.iter_content(64 * 1024):
                self.left -= len(chunk)
                if self.left < 0:
                    raise TooMuch(
                        f"The CalDAV server sent more than {MAX_ANSWER_BYTES:,} bytes "
                        "(decoded) for one sync or push."
                    )
                self._in_time()
                chunks.append(chunk)
            response._content = b"".join(chunks)
            response._content_consumed = True

        def _in_time(self) -> None:
            now = time.monotonic()
            if now > self.deadline:
                raise TooMuch(
                    f"The CalDAV server took longer than {self.seconds:.0f} s "
                    "for one call (a sync, a push or a connect's check)."
                )
            if self.cut is not None and self.cut.at is not None and now > self.cut.at:
                raise TooMuch(
                    "The CalDAV server was slow while every CalDAV thread was taken: the call "
                    f"had {threads.SLOW_DEADLINE_SECONDS:.0f} s more once it was slow."
                )

    return Bounded


@contextmanager
def _calendar(
    account: Account, *, allow_private: bool, deadline: float | None = None
) -> Iterator[Calendar]:
    from caldav.collection import Calendar
    from caldav.davclient import DAVClient
    from caldav.lib import error

    xml_error: type[Exception] = importlib.import_module("lxml.etree").LxmlError

    try:
        client = DAVClient(
            url=account.url,
            username=account.username,
            password=account.password,
            timeout=int(min(TIMEOUT_SECONDS, deadline or TIMEOUT_SECONDS)),
            enable_rfc6764=False,
        )
        client.session.close()
        resolver = {} if allow_private else {"resolver": _public_only()()}
        session = _bounded()(**resolver)
        if deadline is not None:  # shorter than a sync's
            session.seconds = deadline
            session.deadline = time.monotonic() + deadline
        session.trust_env = False
        session.max_redirects = 0
        client.session = session
        with client:
            yield Calendar(client=client, url=account.url)
    # The library's errors, its HTTP stack's, lxml's (an answer that is not XML: before, a 500
    # on connect, and a failed calendar round in the worker), and caldav's NotImplementedError
    # for a WWW-Authenticate it does not know.
    except (error.DAVError, OSError, xml_error, NotImplementedError) as exc:
        raise _explain(exc) from exc


def probe(account: Account, *, allow_private: bool, deadline: float | None = None) -> str | None:
    """Check that the URL is a calendar these credentials may read; returns its name. Within
    `deadline` seconds (each read's timeout too) when given."""
    with _calendar(account, allow_private=allow_private, deadline=deadline) as cal:
        if "VEVENT" not in _done(cal.get_supported_components()):
            raise RemoteError("not_found", "The URL is not a calendar that holds events.")
        name = _done(cal.get_display_name())
        return str(name) if name else None


def pull(account: Account, sync_token: str | None, *, allow_private: bool) -> Pulled:
    """Changes since `sync_token` (sync-collection where the server has it; otherwise caldav's
    fallback lists every object, and its token is a digest of their ETags)."""
    with _calendar(account, allow_private=allow_private) as cal:
        found = _done(cal.get_objects_by_sync_token(sync_token=sync_token, load_objects=False))
        token = str(found.sync_token) if found.sync_token else None
        emulated = token is not None and token.startswith("fake-")
        if emulated and token == sync_token:
            return Pulled(token, False, {}, set())  # nothing changed (same ETags)
        deleted = {str(u) for u in getattr(found, "deleted_urls", set()) or set()}
        changed = {str(obj.url): str(obj.data) for obj in _loaded(cal, found, deleted)}
        return Pulled(token, sync_token is None or emulated, changed, deleted)


def _loaded(cal: Calendar, found: Iterable[Any], deleted: Collection[str] = ()) -> list[Any]:
    """The objects `found` (a listing) with their data, but those `deleted`: one
    calendar-multiget REPORT per 200 objects, not a GET per object (the fallback listing
    carries the data already)."""
    loaded: list[Any] = []
    unloaded: list[Any] = []
    for obj in found:
        if str(obj.url) in deleted:
            continue
        if obj.data:
            loaded.append(obj)
        else:
            unloaded.append(obj.url)
    for i in range(0, len(unloaded), MULTIGET_BATCH):
        batch: Iterable[Any] = _done(cal.multiget(unloaded[i : i + MULTIGET_BATCH]))
        loaded.extend(o for o in batch if o.data)
    return loaded


def put_event(
    account: Account, name: str, ics: bytes, *, allow_private: bool, deadline: float | None = None
) -> str:
    """Create or replace the object `name` (e.g. `<booking id>.ics`); returns its URL."""
    from caldav.calendarobjectresource import Event

    with _calendar(account, allow_private=allow_private, deadline=deadline) as cal:
        url = _url(cal).join(name)
        Event(cal.client, url=url, data=ics.decode(), parent=cal).save(increase_seqno=False)
        return str(url)


def delete_event(
    account: Account, name: str, *, allow_private: bool, deadline: float | None = None
) -> None:
    """Remove the object `name`; one already gone counts as removed."""
    from caldav.calendarobjectresource import Event
    from caldav.lib import error

    with _calendar(account, allow_private=allow_private, deadline=deadline) as cal:
        try:
            Event(cal.client, url=_url(cal).join(name), parent=cal).delete()
        except error.NotFoundError:
            return


def remove_pushed(
    account: Account,
    *,
    allow_private: bool,
    deadline: float | None = None,
    connection_id: uuid.UUID | None = None,
) -> int:
    """Delete every event slotgraph pushed (marked X-SLOTGRAPH-BOOKING-ID) for `connection_id`
    (marked X-SLOTGRAPH-CONNECTION-ID, or unmarked: pushed before the mark); returns how many.
    Each DELETE is conditional on the object's ETag as listed: the same calendar connected
    again meanwhile pushes its events anew (another mark, another ETag), and they stay.

    A server that lists no strong ETag (a weak one, `W/"..."`, never matches `If-Match`; GMX
    sends those) gets an unconditional DELETE, so the object is read again just before it
    (`_still_ours`): one pushed anew meanwhile carries the new connection's mark and stays.
    Before, it was deleted on the listing's word, which may be a whole removal (20 s) old.
    What remains there is the time between that read and the DELETE: one round trip."""
    from caldav.lib import error

    with _calendar(account, allow_private=allow_private, deadline=deadline) as cal:
        removed = 0
        # Every object's data, in a multiget per 200: before, a GET per object of the calendar
        # (the owner's own events too) before the first delete, so a calendar of a few hundred
        # events on a remote server outlasted a removal's deadline (20 s) at every attempt.
        found = _done(cal.get_objects_by_sync_token(load_objects=False))
        deleted = {str(u) for u in getattr(found, "deleted_urls", set()) or set()}
        for obj in _loaded(cal, found, deleted):
            if not _pushed_by(str(obj.data), connection_id):
                continue
            etag = obj.etag if obj.etag and not obj.etag.startswith("W/") else None
            with suppress(error.NotFoundError, error.ETagMismatchError):
                if etag is None and not _still_ours(obj, connection_id):
                    continue
                obj.delete(if_match=etag or False)
                removed += 1
        return removed


def _still_ours(obj: Any, connection_id: uuid.UUID | None) -> bool:
    """The object read again (a GET): still pushed by `connection_id`? (NotFoundError: gone.)"""
    _done(obj.load())
    return _pushed_by(str(obj.data), connection_id)


def _pushed_by(data: str, connection_id: uuid.UUID | None) -> bool:
    if PUSHED_MARK not in data:
        return False
    if connection_id is None or CONNECTION_MARK not in data:
        return True
    return f"{CONNECTION_MARK}:{connection_id}" in data
