"""Watch every agent process of a platform under chaos, from the outside.

A thread that, every `interval`:

* reads new `spawned` events (request id, agent pid, time) from `request_events`
  (tolerating a database that is being killed and restarted);
* samples /proc: an agent is alive while its spawned pid or any descendant exists;
  processes working in a request's workspace are attributed to that request's agent
  even before its event arrives, or after their parent died (orphans);
* counts live agents per request and records every moment that count exceeds one.

So "never two live agents for one request" is checked against the processes themselves,
not against what the platform believes; the spawn/exit times per attempt come out too.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg


@dataclass
class Agent:
    request_id: str
    key: int  # spawned pid = session id of the agent's processes
    spawned_at: float | None = None  # from the event (the worker's clock: this machine's)
    first_seen: float | None = None
    last_seen: float | None = None
    event_id: int | None = None

    @property
    def start(self) -> float:
        return min(x for x in (self.spawned_at, self.first_seen) if x is not None)

    @property
    def end(self) -> float:
        return max(x for x in (self.last_seen, self.spawned_at, self.first_seen) if x is not None)


def _procs() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, cwd) of every live (non-zombie) process we can read."""
    out: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            try:
                cwd = os.readlink(f"/proc/{name}/cwd")
            except OSError:
                cwd = ""
            out[int(name)] = (int(fields[1]), cwd)
        except (OSError, IndexError, ValueError):
            continue
    return out


class AgentMonitor(threading.Thread):
    def __init__(self, dsn: str, workspaces: Path, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name="agent-monitor")
        self.dsn = dsn
        self.workspaces = str(workspaces) + "/"
        self.interval = interval
        self.agents: dict[int, Agent] = {}
        self.violations: list[tuple[float, str, list[int]]] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self._last_event = 0
        self._conn: psycopg.Connection | None = None
        self._next_db = 0.0

    def run(self) -> None:
        while not self.halt.is_set():
            self.tick()
            self.halt.wait(self.interval)
        if self._conn is not None:
            self._conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(10)

    def _read_events(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
            rows = self._conn.execute(
                "SELECT id, request_id::text, extract(epoch FROM at)::float8, (data->>'pid')::int "
                "FROM eve.request_events WHERE kind = 'spawned' AND id > %s ORDER BY id", (self._last_event,)
            ).fetchall()
        except psycopg.Error:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return
        for event_id, rid, at, pid in rows:
            self._last_event = max(self._last_event, event_id)
            if pid is None:
                continue
            agent = self.agents.get(pid)
            if agent is None or agent.request_id != rid:
                agent = self.agents[pid] = Agent(request_id=rid, key=pid)
            agent.spawned_at, agent.event_id = at, event_id

    def tick(self) -> None:
        now = time.time()
        with self.lock:
            if now >= self._next_db:
                self._read_events()
                self._next_db = now + 0.2
            live_keys = self._live_keys(_procs())
            per_request: dict[str, list[int]] = {}
            for key in live_keys:
                agent = self.agents[key]
                agent.first_seen = agent.first_seen or now
                agent.last_seen = now
                per_request.setdefault(agent.request_id, []).append(key)
            for rid, keys in per_request.items():
                if len(keys) > 1:
                    self.violations.append((now, rid, sorted(keys)))

    def _workspace_of(self, cwd: str) -> str | None:
        if not cwd.startswith(self.workspaces):
            return None
        return cwd[len(self.workspaces):].split("/", 1)[0] or None

    def _live_keys(self, procs: dict[int, tuple[int, str]]) -> set[int]:
        """The agents (keys) with at least one live process.

        A process belongs to the nearest ancestor that is a known agent (its spawned pid);
        failing that (its `spawned` event not read yet, or an orphan whose parent died),
        to its topmost ancestor working in the same request's workspace — the agent's own
        process. Agents' tools may start their own sessions, so sessions prove nothing.
        """
        keys: set[int] = set()
        for pid, (_, cwd) in procs.items():
            key, top, node, seen = None, None, pid, 0
            rid = self._workspace_of(cwd)
            while node in procs and seen < 64:
                if node in self.agents:
                    key = node
                    break
                parent_cwd = procs[node][1]
                if rid is not None and self._workspace_of(parent_cwd) == rid:
                    top = node
                node, seen = procs[node][0], seen + 1
            if key is None and top is not None:
                key = top
                if key not in self.agents:
                    self.agents[key] = Agent(request_id=rid, key=key)  # type: ignore[arg-type]
            if key is not None:
                keys.add(key)
        return keys

    def live(self) -> list[Agent]:
        """Agents with a process alive right now."""
        with self.lock:
            return [self.agents[k] for k in self._live_keys(_procs())]

    def attempts(self) -> dict[str, list[Agent]]:
        with self.lock:
            out: dict[str, list[Agent]] = {}
            for agent in self.agents.values():
                out.setdefault(agent.request_id, []).append(agent)
            for agents in out.values():
                agents.sort(key=lambda a: a.start)
            return out

    def overlaps(self) -> list[tuple[str, Agent, Agent]]:
        """Pairs of attempts of one request whose [spawn, last seen] intervals intersect."""
        bad = []
        for rid, agents in self.attempts().items():
            for prev, nxt in zip(agents, agents[1:]):
                if prev.last_seen is not None and nxt.first_seen is not None and nxt.start < prev.end:
                    bad.append((rid, prev, nxt))
        return bad
