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
    """Knobs of the queue; the same for every process that touches it.

    Recovery timing lives here, in one place (README "What happens when things crash"):
    a claim holds a lease of `lease_seconds`, renewed every `heartbeat_seconds`; a worker
    that cannot renew stops its agent `fence_margin_seconds` before the lease would end
    (fencing: never two live agents), and the reaper, every `reaper_seconds`, requeues
    requests whose lease ran out. A worker restarting under its old id requeues its
    claims at once, without waiting for the lease.
    """

    lease_seconds: float = field(default_factory=lambda: env_float("EVE_LEASE_SECONDS", 15.0))
    heartbeat_seconds: float = field(default_factory=lambda: env_float("EVE_HEARTBEAT_SECONDS", 5.0))
    reaper_seconds: float = field(default_factory=lambda: env_float("EVE_REAPER_SECONDS", 3.0))
    fence_margin_seconds: float = field(default_factory=lambda: env_float("EVE_FENCE_MARGIN_SECONDS", 3.0))
    retry_base_seconds: float = field(default_factory=lambda: env_float("EVE_RETRY_BASE_SECONDS", 5.0))
    retry_max_seconds: float = field(default_factory=lambda: env_float("EVE_RETRY_MAX_SECONDS", 600.0))
    default_timeout_ms: int = 1_800_000
    # the workers' wall-time cap per agent (#28), known to the API too: a request asking for a
    # longer timeoutMs is refused at submission (400) instead of being cut short later
    agent_max_minutes: float = field(default_factory=lambda: env_float("EVE_AGENT_MAX_MINUTES", 120.0))
    max_prompt_bytes: int = 1_000_000


def database_url(explicit: str | None = None) -> str | None:
    """The DSN to use: an explicit one, else DATABASE_URL, else None (embedded default)."""
    return explicit or os.environ.get("DATABASE_URL") or None
