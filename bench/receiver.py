"""A webhook receiver in its own process (`python -m bench.receiver PORT`).

POST anything: answered 200 at once, arrival noted (wall clock). GET /stats: {"count", "last"}.
Minimal asyncio HTTP/1.1 with keep-alive, so that it is never the bottleneck being measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

seen: set[str] = set()
last = 0.0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global last
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            headers = {k.lower(): v for k, _, v in (ln.partition(": ") for ln in lines[1:]) if v}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if lines[0].startswith("GET"):
                out = json.dumps({"count": len(seen), "last": last}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(out), out))
            else:
                msg = headers.get("webhook-id") or body[:80].decode()
                if msg not in seen:
                    seen.add(msg)
                    last = time.time()
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
