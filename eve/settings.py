"""Settings read from the environment, in one place, with the defaults the design names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from eve.errors import ConfigError

        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        from eve.errors import ConfigError

        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class QueueSettings:
    """Knobs of the queue; the same for every process that touches it."""

    lease_seconds: float = field(default_factory=lambda: env_float("EVE_LEASE_SECONDS", 60.0))
    retry_base_seconds: float = field(default_factory=lambda: env_float("EVE_RETRY_BASE_SECONDS", 5.0))
    retry_max_seconds: float = field(default_factory=lambda: env_float("EVE_RETRY_MAX_SECONDS", 600.0))
    default_timeout_ms: int = 1_800_000
    max_prompt_bytes: int = 1_000_000


def database_url(explicit: str | None = None) -> str | None:
    """The DSN to use: an explicit one, else DATABASE_URL, else None (embedded default)."""
    return explicit or os.environ.get("DATABASE_URL") or None
