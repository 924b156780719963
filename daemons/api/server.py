"""Serve the API with uvicorn.

uvicorn rather than granian: it is the most widely deployed ASGI server, pure Python
with optional uvloop/httptools speedups, behaves the same under systemd, compose and
Kubernetes, and its multi-process mode (`--workers`) covers one VPS; nothing here needs
granian's Rust HTTP stack.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from eve import logging as eve_logging
from eve.errors import EveError


def app_factory():  # noqa: ANN201 - uvicorn factory
    from eve.daemons.api.app import create_app
    from eve.daemons.api.settings import ApiSettings

    return create_app(ApiSettings.from_env())


def serve(host: str = "127.0.0.1", port: int = 3000, workers: int = 1) -> None:
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
    uvicorn.run("eve.daemons.api.server:app_factory", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, proxy_headers=True, timeout_graceful_shutdown=5,
                timeout_keep_alive=int(os.environ.get("EVE_API_KEEPALIVE_S", "75")), backlog=2048)
