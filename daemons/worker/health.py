"""`/health` and `/metrics` on the worker's health port, without a web framework.

The worker must not load the web stack, and two fixed GET routes need no framework:
a small asyncio server answers them (HTTP/1.1, one response per connection). The port is
unauthenticated (probes have no login): `/health` names no request and `/metrics` serves
the public view unless the scrape sends the metrics token (eve/metrics.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from eve import metrics
from eve.errors import AuthError

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


MAX_HEADERS = 100


async def serve(host: str, port: int, health: HealthFn,
                metrics_token: str | None = None) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            authorization = None
            for _ in range(MAX_HEADERS):
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "authorization":
                    authorization = value.strip()
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif path == "/health":
                ok, data = health()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(data).encode()
            elif path == "/metrics":
                try:
                    full = metrics.full_access(authorization, metrics_token)
                    status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition(full)
                except AuthError as exc:
                    status, ctype = "401 Unauthorized", "application/json"
                    body = json.dumps({"error": exc.code, "message": str(exc)}).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found: try /health or /metrics\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            writer.write(head + (body if parts and parts[0] != "HEAD" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
