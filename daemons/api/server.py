"""Serve the API with uvicorn.

uvicorn rather than granian: it is the most widely deployed ASGI server, pure Python
with optional uvloop/httptools speedups, behaves the same under systemd, compose and
Kubernetes, and its multi-process mode (`--workers`) covers one VPS; nothing here needs
granian's Rust HTTP stack.

Several processes: `--workers N` is uvicorn's own supervisor (systemd, compose: one unit
or container). `--reuse-port` instead binds with SO_REUSEPORT so that independent API
processes share one port and the kernel spreads connections over them: `eve up
--api-processes N` starts and supervises each on its own (one killed, the others keep
serving). Either way every process has its own pool, its own SSE hub (LISTEN connection,
presence row under its own id) and its own worker-type cache; what they share lives in
PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import sys

import uvicorn

from typing import Any

from eve import logging as eve_logging
from eve.errors import EveError


def app_factory():  # noqa: ANN201 - uvicorn factory
    from eve.daemons.api.app import create_app
    from eve.daemons.api.settings import ApiSettings

    return create_app(ApiSettings.from_env())


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening-to-be socket with SO_REUSEPORT: other processes may bind the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve(host: str = "127.0.0.1", port: int = 3000, workers: int = 1, reuse_port: bool = False) -> None:
    eve_logging.setup(os.environ.get("EVE_LOG_LEVEL", "INFO"))
    try:
        from eve.daemons.api.settings import ApiSettings

        ApiSettings.from_env()  # fail fast, in one line, before uvicorn starts
    except EveError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    # our access log (JSON, with request id, org, route, status, latency) replaces uvicorn's.
    # Keep-alive: uvicorn closes an idle connection after 5 s by default, exactly when httpx
    # (keepalive_expiry 5 s) may still reuse it: the request then meets a closing socket and
    # the client gets ReadError('') (seen once in ten runs of the POST benchmark, never in
    # the access log). The server must outlast its clients' idle timeouts (httpx 5 s,
    # nginx/ALB 60 s), so 75 s, as gunicorn and nginx use; EVE_API_KEEPALIVE_S overrides.
    options: dict[str, Any] = dict(
        factory=True, host=host, port=port, log_config=None, access_log=False, proxy_headers=True,
        timeout_graceful_shutdown=5, timeout_keep_alive=int(os.environ.get("EVE_API_KEEPALIVE_S", "75")),
        backlog=2048)
    if reuse_port and workers == 1:
        sock = reuse_port_socket(host, port)
        uvicorn.Server(uvicorn.Config("eve.daemons.api.server:app_factory", **options)).run(sockets=[sock])
        return
    uvicorn.run("eve.daemons.api.server:app_factory", workers=workers, **options)
