"""What one agent may use: memory, processes, CPU, /tmp, workspace disk, wall time, idle time.

An agent runs a tenant's prompt with a shell (DESIGN §9): one runaway build or fork loop
must not starve the agents on the other slots, the worker or a PostgreSQL on the same
VPS. A worker's operator sets the limits (`eve worker run --agent-memory-mb ...`, or
`EVE_AGENT_MEMORY_MB` ...); a worker type may narrow them (`worker_types.config.limits`,
e.g. `{"memory_mb": 1024, "max_minutes": 30}`) but never widen them. `0` means "no
limit" and is shown as `off`, never silently.

This module is resolution only (data in, data out, unit-tested); how a limit is held —
a cgroup, an rlimit, a watcher — is eve.executor.cgroups, and the error codes an agent
stopped by a limit ends with are `ERROR_CODES`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from eve.errors import ConfigError

# field → (environment variable, default, unit shown to people)
SPEC: dict[str, tuple[str, float, str]] = {
    "memory_mb": ("EVE_AGENT_MEMORY_MB", 4096, "MiB"),
    "pids": ("EVE_AGENT_PIDS", 512, "processes"),
    "tmp_mb": ("EVE_AGENT_TMP_MB", 1024, "MiB"),
    "disk_mb": ("EVE_AGENT_DISK_MB", 10240, "MiB"),
    "max_minutes": ("EVE_AGENT_MAX_MINUTES", 120, "min"),
    "idle_minutes": ("EVE_AGENT_IDLE_MINUTES", 20, "min"),
    "cpus": ("EVE_AGENT_CPUS", 0, "CPUs"),  # a cap; 0: none (every agent still gets an equal share)
}
WHOLE = frozenset({"memory_mb", "pids", "tmp_mb", "disk_mb"})  # the rest may be fractional (tests: seconds)
# the `limit` of a limit_exceeded event → the result's error_code
ERROR_CODES = {"memory": "memory_limit", "disk": "disk_limit", "time": "time_limit", "idle": "idle_timeout"}
MiB = 1024 * 1024


@dataclass(frozen=True)
class AgentLimits:
    """Per-agent limits; 0 is "no limit" for every field."""

    memory_mb: int = 4096
    pids: int = 512
    tmp_mb: int = 1024
    disk_mb: int = 10240
    max_minutes: float = 120
    idle_minutes: float = 20
    cpus: float = 0

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * MiB

    @property
    def disk_bytes(self) -> int:
        return self.disk_mb * MiB

    @property
    def tmp_bytes(self) -> int:
        return self.tmp_mb * MiB

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def timeout_s(self, requested_ms: int) -> tuple[float, bool]:
        """(seconds the agent may run, whether the worker's cap rather than the request decides)."""
        requested = requested_ms / 1000
        if self.max_minutes and self.max_minutes * 60 < requested:
            return self.max_minutes * 60, True
        return requested, False


def _number(name: str, raw: Any, source: str) -> float:
    """A non-negative number (whole for sizes and counts), or a ConfigError naming `source`."""
    if isinstance(raw, bool):
        raise ConfigError(f"{source} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{source} must be 0 (no limit) or more, got {raw!r}")
    if name in WHOLE and value != int(value):
        raise ConfigError(f"{source} must be a whole number, got {raw!r}")
    return int(value) if name in WHOLE else value


def from_env(env: Mapping[str, str] | None = None, **flags: Any) -> AgentLimits:
    """The worker's limits: a flag given (not None) wins over its EVE_AGENT_* variable, which
    wins over the default."""
    env = os.environ if env is None else env
    values: dict[str, float] = {}
    for name, (var, default, _unit) in SPEC.items():
        flag = flags.get(name)
        if flag is not None:
            values[name] = _number(name, flag, f"--agent-{name.replace('_', '-')}")
        elif env.get(var, "") != "":
            values[name] = _number(name, env[var], var)
        else:
            values[name] = default
    return AgentLimits(**values)  # type: ignore[arg-type]


def _tighter(base: float, other: float) -> float:
    """The narrower of two limits, where 0 means none."""
    if not base:
        return other
    if not other:
        return base
    return min(base, other)


def narrow(base: AgentLimits, overrides: Mapping[str, Any] | None, *, source: str = "worker_types.config.limits") -> AgentLimits:
    """`base` narrowed by `overrides` (a worker type's or an org's): each value can only lower a
    limit; a higher one, or 0 ("none"), leaves the worker's."""
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{source} must be an object like {{\"memory_mb\": 1024}}, got {type(overrides).__name__}")
    changes: dict[str, float] = {}
    for key, raw in overrides.items():
        if key not in SPEC:
            raise ConfigError(f"{source}: unknown limit {key!r}; known: {', '.join(SPEC)}")
        value = _number(key, raw, f"{source}.{key}")
        if value:
            changes[key] = _tighter(getattr(base, key), value)
    return replace(base, **changes)  # type: ignore[arg-type]


def max_timeout_ms(limits: AgentLimits) -> int | None:
    """The longest timeoutMs a request may ask for, or None when wall time has no cap."""
    return int(limits.max_minutes * 60_000) if limits.max_minutes else None


def api_cap_ms(max_minutes: float, worker_type_config: Mapping[str, Any] | None = None) -> int | None:
    """The timeoutMs cap submissions are checked against: the workers' EVE_AGENT_MAX_MINUTES
    (given to the API too) narrowed by the worker type's `limits.max_minutes`; None: no cap.
    A malformed worker-type value is the operator's to fix (the worker refuses it at start),
    never a 500 for the submitter: it is ignored here."""
    minutes = max_minutes
    own = (worker_type_config or {}).get("limits") or {}
    if isinstance(own, Mapping) and own.get("max_minutes"):
        try:
            minutes = _tighter(minutes, float(_number("max_minutes", own["max_minutes"], "limits.max_minutes")))
        except ConfigError:
            pass
    return int(minutes * 60_000) if minutes else None


def check_timeout(timeout_ms: int | None, max_minutes: float, worker_type_config: Mapping[str, Any] | None) -> None:
    """A request's timeoutMs over the cap is refused, naming the cap (ValidationError: a 400)."""
    from eve.errors import ValidationError

    cap = api_cap_ms(max_minutes, worker_type_config)
    if timeout_ms is not None and cap is not None and timeout_ms > cap:
        raise ValidationError(f"timeoutMs {timeout_ms} is over the cap of {cap} ms ({cap / 60_000:g} min): agents "
                              f"run at most that long (EVE_AGENT_MAX_MINUTES, worker_types.config.limits); "
                              f"ask for {cap} or less", code="timeout_over_cap")


def fmt(name: str, value: float) -> str:
    """`4096 MiB`, `512 processes`, `2 min`, `off`."""
    if not value:
        return "off"
    unit = SPEC[name][2]
    shown = f"{value:g}"
    return f"{shown} {unit}"


def describe_text(described: Mapping[str, Any] | None) -> str:
    """One line from a worker's registered limits (eve.executor.cgroups.Limiter.describe, as
    GET /workers returns it): `cgroup1: memory 4096 MiB, pids 512, ...; NOT ENFORCED: tmp (why)`."""
    if not described:
        return "none (a worker from before per-agent limits)"
    names = {"memory": "memory_mb", "pids": "pids", "tmp": "tmp_mb", "disk": "disk_mb", "wall": "max_minutes",
             "idle": "idle_minutes"}
    parts = [f"{label} {fmt(key, float(described.get(key) or 0))}" for label, key in names.items()]
    holds = described.get("holds") or {}
    weak = [f"{k} ({str(v).removeprefix('not enforced: ')})" for k, v in holds.items()
            if str(v).startswith("not enforced")]
    return f"{described.get('mechanism', '?')}: {', '.join(parts)}" + (f"; NOT ENFORCED: {', '.join(weak)}" if weak else "")


def whole_tree(described: Mapping[str, Any] | None) -> bool:
    """Memory and processes held for the agent's whole tree (a cgroup), not per process."""
    holds = (described or {}).get("holds") or {}
    return all(str(holds.get(k, "")).startswith(("cgroup", "off")) for k in ("memory", "pids"))


def short_text(described: Mapping[str, Any] | None) -> tuple[str, bool]:
    """(`cgroup1`, `cgroup1 -tmp` with what is not enforced, or `none`; whether it is weak) for a table cell."""
    if not described:
        return "none", True
    holds = described.get("holds") or {}
    weak = [k for k, v in holds.items() if str(v).startswith("not enforced")]
    mech = str(described.get("mechanism", "?"))
    return mech + (f" -{',-'.join(weak)}" if weak else ""), mech == "rlimit" or bool(weak)
