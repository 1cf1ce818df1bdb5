"""`serve` says a taken port in its own words before uvicorn tries (cli_commands._taken), for
every address uvicorn would bind, not the first the host name resolves to: `localhost` is ::1
and 127.0.0.1 on Debian's own /etc/hosts, and one process binds both (the event loop's
`create_server`), so a port another program held on 127.0.0.1 alone passed the check and
uvicorn stopped with `[Errno 98] ... address already in use` in a JSON log line.
tests/system/test_cli.py runs the whole `serve` against a taken port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from slotgraph.cli_commands import _taken

REAL_GETADDRINFO = socket.getaddrinfo


@contextmanager
def _listening(address: str, port: int = 0) -> Iterator[int]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as held:
        if family == socket.AF_INET6:
            held.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        held.bind((address, port))
        held.listen()
        yield held.getsockname()[1]


@pytest.fixture
def localhost_is_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """`localhost` resolves as Debian's default /etc/hosts has it (`::1 localhost
    ip6-localhost ...` and `127.0.0.1 localhost`), IPv6 first; this machine's has only the
    IPv4 line."""

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            ipv6 = REAL_GETADDRINFO("::1", *args, **kwargs)
            return [*ipv6, *REAL_GETADDRINFO("127.0.0.1", *args, **kwargs)]
        return REAL_GETADDRINFO(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_a_port_held_on_the_second_address_of_localhost_is_taken(localhost_is_both: None) -> None:
    with _listening("127.0.0.1") as port:
        assert _taken("localhost", port, workers=1)  # ::1 is free: False before
        assert _taken("localhost", port, workers=2)  # uvicorn's own socket: IPv4


def test_a_port_held_on_one_family_is_taken_for_every_interface() -> None:
    with _listening("::1") as port:  # 0.0.0.0, the first of "", is free
        assert _taken("", port, workers=1)
        assert not _taken("127.0.0.1", port, workers=1)  # another address: free to serve


def test_a_free_port_is_not_taken(localhost_is_both: None) -> None:
    with _listening("::1") as port:
        pass
    assert not _taken("localhost", port, workers=1)
    assert not _taken("", port, workers=1)
    assert not _taken("localhost", port, workers=2)
    with _listening("::1") as held:  # uvicorn's --workers socket for localhost is IPv4 only
        assert not _taken("localhost", held, workers=2)
