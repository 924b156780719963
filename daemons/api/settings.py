"""API settings from the environment; refuses to start without a strong JWT secret."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from eve import metrics
from eve.auth import DEFAULT_TTL_S, check_secret
from eve.errors import ConfigError
from eve.settings import QueueSettings, env_int

MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    jwt_secret: str
    token_ttl_s: int = DEFAULT_TTL_S
    cors_origins: tuple[str, ...] = ()
    sse_ping_s: float = 15.0
    sse_queue_size: int = 1000
    pool_size: int = 10
    metrics_token: str | None = None  # EVE_METRICS_TOKEN: a scrape with it sees org ids and cost
    idempotency_ttl_s: int = 24 * 3600  # how long an Idempotency-Key answers for (EVE_IDEMPOTENCY_TTL_HOURS)
    queue: QueueSettings = field(default_factory=QueueSettings)

    @classmethod
    def from_env(cls) -> ApiSettings:
        dsn = os.environ.get("DATABASE_URL")
        if not dsn:
            raise ConfigError("DATABASE_URL is not set: the API needs PostgreSQL (a DSN: postgresql://USER:PASSWORD@HOST:PORT/DB)")
        origins = tuple(o.strip() for o in os.environ.get("EVE_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(database_url=dsn, jwt_secret=check_secret(os.environ.get("JWT_SECRET")),
                   token_ttl_s=env_int("EVE_TOKEN_TTL", DEFAULT_TTL_S), cors_origins=origins,
                   sse_ping_s=float(os.environ.get("EVE_SSE_PING_S", "15")),
                   pool_size=env_int("EVE_API_POOL_SIZE", 10), metrics_token=metrics.metrics_token(),
                   idempotency_ttl_s=env_int("EVE_IDEMPOTENCY_TTL_HOURS", 24) * 3600)
