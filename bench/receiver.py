"""A webhook receiver in its own process (`python -m bench.receiver PORT`).

POST anything: answered 200 at once, arrival noted (wall clock). GET: {"count", "last"}, and
with `?at=K` also "at", the arrival time of the K-th distinct message (null before it came), so
a bench can time any stretch of arrivals, a warm-up left out, by the same clock for the worker
and for the floor's client. Minimal asyncio HTTP/1.1 with keep-alive, so that it is never the
bottleneck being measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

seen: set[str] = set()
arrivals: list[float] = []  # the arrival time of each distinct message, in order


def _stats(target: str) -> bytes:
    out: dict[str, float | int | None] = {"count": len(seen)}
    out["last"] = arrivals[-1] if arrivals else 0.0
    _, _, query = target.partition("?at=")
    if query:
        k = int(query)
        out["at"] = arrivals[k - 1] if 0 < k <= len(arrivals) else None
    return json.dumps(out).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            headers = {k.lower(): v for k, _, v in (ln.partition(": ") for ln in lines[1:]) if v}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if lines[0].startswith("GET"):
                out = _stats(lines[0].split(" ")[1])
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(out), out))
            else:
                msg = headers.get("webhook-id") or body[:80].decode()
                if msg not in seen:
                    seen.add(msg)
                    arrivals.append(time.time())
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
