"""The limits the kernel does not end on its own: a watcher beside a running agent.

Runs next to the agent's output readers in eve.executor.run and returns a `Hit` when
a limit trips, and the executor then stops the whole agent:

* memory — the kernel's OOM killer took a process of the agent's cgroup (it may have
  taken only the tool that allocated; the agent is then stopped too, so a memory
  overrun never looks like an ordinary tool failure or a crash to retry);
* disk — what the agent can write on disk: its workspace and its turn directory (its
  HOME, its config copies, in uid mode its TMPDIR), the blocks its files take added up
  (eve.executor.session.tree_bytes: directory entries only, no file opened, stopping as
  soon as it passes the cap; a sparse file costs what it really holds) every few seconds —
  less often when a walk is slow — and once more when the agent ends;
* idle — no stdout/stderr line for `idle_minutes` (a hung tool, an agent waiting on
  nothing).

Wall time is the executor's own timeout, capped by `max_minutes` (`AgentLimits.timeout_s`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eve.executor.cgroups import AgentGroup
from eve.executor.limits import ERROR_CODES, SPEC, AgentLimits, fmt
from eve.executor.session import tree_bytes
from eve.models import Outcome

POLL_S = 0.5
DISK_EVERY_S = 2.0


@dataclass(frozen=True)
class Hit:
    """A limit an agent ran into: what the result and the `limit_exceeded` event say."""

    limit: str  # memory | disk | time | idle
    value: float  # the limit, in its unit (MiB, minutes)
    message: str
    data: dict[str, Any] = field(default_factory=dict)  # what was seen (usage, oom kills)

    @property
    def error_code(self) -> str:
        return ERROR_CODES[self.limit]

    def event(self, mechanism: str) -> dict[str, Any]:
        key = {"memory": "memory_mb", "disk": "disk_mb", "time": "max_minutes", "idle": "idle_minutes"}[self.limit]
        return {"limit": self.limit, "value": self.value, "unit": SPEC[key][2], "error_code": self.error_code,
                "mechanism": mechanism, "message": self.message, **self.data}

    def outcome(self, duration_ms: int) -> Outcome:
        """Final (never retried): the same prompt would hit the same limit again."""
        status = "timeout" if self.limit in ("time", "idle") else "failed"
        return Outcome(status=status, error=self.message, error_code=self.error_code, duration_ms=duration_ms,
                       retryable=False)


def time_hit(limits: AgentLimits) -> Hit:
    return Hit("time", limits.max_minutes,
               f"the agent ran into the worker's wall-time limit ({fmt('max_minutes', limits.max_minutes)}) "
               "and was stopped")


class Watch:
    """One agent's watcher; `touch()` on every line of output."""

    def __init__(self, limits: AgentLimits, group: AgentGroup, roots: Sequence[Path], *,
                 disk_every_s: float = DISK_EVERY_S) -> None:
        self.limits = limits
        self.group = group
        self.roots = list(roots)  # the trees the agent writes to; they count together
        self.disk_every_s = disk_every_s
        self.last_output = time.monotonic()

    def touch(self) -> None:
        self.last_output = time.monotonic()

    def memory_hit(self) -> Hit | None:
        kills = self.group.oom_kills()
        if not kills:
            return None
        return Hit("memory", self.limits.memory_mb,
                   f"the agent ran out of its memory limit ({fmt('memory_mb', self.limits.memory_mb)}, /tmp "
                   "included) and was stopped", {"oom_kills": kills, **self.group.usage()})

    def disk_hit(self) -> Hit | None:
        if not self.limits.disk_mb:
            return None
        left: int | None = self.limits.disk_bytes
        for root in self.roots:
            try:
                used = tree_bytes(root, left, blocks=True) if root.is_dir() else 0
            except OSError:  # the agent is changing the tree under the walk: next time
                return None
            left = None if used is None else left - used
            if left is None:
                break
        if left is not None:
            return None
        return Hit("disk", self.limits.disk_mb,
                   f"the agent's workspace grew past its disk limit ({fmt('disk_mb', self.limits.disk_mb)}) "
                   "and the agent was stopped", {"workspace_over_mb": self.limits.disk_mb})

    def final(self) -> Hit | None:
        """Checked once the agent has ended by itself: an OOM that killed the agent's own
        process, a workspace left over its limit."""
        return self.memory_hit() or self.disk_hit()

    async def run(self) -> Hit:
        """Returns the first limit that trips; runs until cancelled otherwise."""
        idle_s = self.limits.idle_minutes * 60
        poll = min(POLL_S, idle_s / 4) if idle_s else POLL_S
        next_disk = time.monotonic() + self.disk_every_s
        while True:
            await asyncio.sleep(poll)
            hit = self.memory_hit()
            if hit is not None:
                return hit
            now = time.monotonic()
            if idle_s and now - self.last_output > idle_s:
                return Hit("idle", self.limits.idle_minutes,
                           f"no output from the agent for {fmt('idle_minutes', self.limits.idle_minutes)} "
                           "(its idle limit); it was stopped", {"idle_s": round(now - self.last_output, 1)})
            if self.limits.disk_mb and now >= next_disk:
                started = time.monotonic()
                hit = await asyncio.to_thread(self.disk_hit)
                if hit is not None:
                    return hit
                took = time.monotonic() - started
                next_disk = time.monotonic() + max(self.disk_every_s, 20 * took)  # a huge tree: walk less often
