"""The worker: claim requests of one type, run up to N at once, keep leases, heal the queue.

Tasks inside one process:

* claim loop — claims as many requests as there are free slots; sleeps until a NOTIFY on
  `eve_requests` names its type, or the poll interval passes (a lost notification only
  delays a request, never strands it);
* listener — a dedicated autocommit connection LISTENing on `eve_requests` and
  `eve_cancel`, reconnecting with backoff when the database goes away;
* heartbeat — renews the leases of running requests (learning of cancels as it does),
  and the worker's row in `eve.workers`;
* reaper — `eve.queue.reap`, guarded by an advisory lock so one worker reaps at a time;
* one task per running request (eve.executor), whose events are batched into
  `request_events` and whose result is held and retried until the database takes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg

from eve import __version__, metrics, orgsecrets, queue, reqtokens, scheduler, waiting, workers
from eve.db import as_service, connect, make_pool
from eve.errors import DatabaseUnavailable, ResultConflict
from eve.executor import egress, safefs
from eve.executor import limits as agent_limits
from eve.executor.cgroups import Limiter
from eve.executor.run import ExecutorSettings, execute
from eve.executor.sandbox import DEFAULT_UID_BASE, Runtime, kill_uid_processes
from eve.executor.session import (
    DEFAULT_ARCHIVE_CAP_BYTES, DEFAULT_UNPACKED_CAP_BYTES, ArchiveTooLarge, Resume, TurnInfo, archive_workspace,
    Transcript, load_transcript, restore_workspace, resume_prompt,
)
from eve.executor.workspace import TURNS, remove_turn
from eve.models import Outcome, Request, WorkerType
from eve.webhooks import outbox
from eve.daemons.worker.results import ResultWriter
from eve.settings import QueueSettings

log = logging.getLogger("eve.worker")
T = TypeVar("T")
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


@dataclass
class WorkerConfig:
    dsn: str
    worker_type: str
    slots: int = 1
    health_port: int | None = 8080
    health_host: str = "0.0.0.0"
    workspace_root: Path = Path("/workspace")
    grace_s: float = 30.0
    poll_interval_s: float = 5.0
    isolate_home: bool = False
    listen: bool = True  # False: poll only (PgBouncer transaction pooling); cancels arrive with the heartbeat
    queue: QueueSettings = field(default_factory=QueueSettings)
    worker_id: str = field(default_factory=lambda: f"worker-{socket.gethostname()}-{os.getpid()}")
    sandbox: str = "auto"  # auto | bwrap | uid | none (eve.executor.sandbox)
    sandbox_hide: tuple[str, ...] = ()  # platform paths agents must never see (data dirs, config)
    sandbox_uid_base: int = DEFAULT_UID_BASE  # slot i runs as uid base+i (root workers)
    agent_network: str = "auto"  # auto | filtered | open (eve.executor.egress)
    agent_net_allow: tuple[str, ...] = ()  # more host[:port] entries agents may reach when filtered
    keep_workspaces: bool = False  # development: keep every workspace
    keep_failed_s: float = 86_400.0  # failed requests' workspaces stay this long for debugging
    min_free_disk_mb: int = 1024  # below this much free space under the workspace root, stop claiming
    api_url: str | None = None  # the API agents reach with their request token (EVE_API_URL); None: no token
    session_archive_cap_bytes: int = DEFAULT_ARCHIVE_CAP_BYTES  # a waiting request's workspace, compressed
    session_unpacked_cap_bytes: int = DEFAULT_UNPACKED_CAP_BYTES  # ... and its files added up, uncompressed
    reuse_local_workspaces: bool = True  # resume in the directory a worker on this host left
    kept_session_days: float = 7.0  # a finished Slack-thread request's session, kept for a continuation
    agent_limits: agent_limits.AgentLimits = field(default_factory=agent_limits.AgentLimits)  # per agent (#28)
    agent_limits_mechanism: str = "auto"  # auto | cgroup2 | cgroup1 | rlimit (eve.executor.cgroups)


@dataclass
class Slot:
    request: Request
    task: asyncio.Task[None]
    index: int = 0  # which slot: picks the agent's uid
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown: bool = False
    fenced: bool = False  # the claim is lost (or could not be renewed): stop, write nothing
    renewed_at: float = field(default_factory=time.monotonic)


def _is_uuid(name: str) -> bool:
    try:
        UUID(name)
    except ValueError:
        return False
    return True


def _load_transcript(turn: TurnInfo) -> Transcript | None:
    """The turn's session transcript, read without following anything the agent linked."""
    return load_transcript(turn.config_roots or [], turn.session_id or "", anchor=turn.turn_dir,
                           cwd_inside=turn.cwd_inside)


def _slack_thread(req: Request) -> bool:
    """Reports to a Slack thread: a mention there may continue it (migration 0013)."""
    return isinstance(req.reply_to, dict) and req.reply_to.get("type") == "slack"


class EventBatcher:
    """Buffers one request's events and writes them in batches (every 100 ms or 200 events)."""

    def __init__(self, worker: Worker, request: Request) -> None:
        self.worker = worker
        self.request = request
        self.buffer: list[tuple[str, dict[str, Any], datetime]] = []
        self.flushed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def emit(self, kind: str, data: dict[str, Any]) -> None:
        # stamped when it happened, not when the batch reaches the database
        self.buffer.append((kind, data, datetime.now(timezone.utc)))
        if len(self.buffer) >= 200:
            await self.flush()
        elif self._task is None:
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(0.1)
        self._task = None
        await self.flush()

    async def flush(self) -> None:
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        try:
            await self.worker.with_db(lambda c: queue.append_events(c, self.request.id, self.request.org_id, batch),
                                      attempts=5)
        except DB_ERRORS:
            log.warning("dropped %d events after retries", len(batch), extra={"request_id": self.request.id})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.id = config.worker_id
        self.pool = make_pool(config.dsn, min_size=2, max_size=max(4, config.slots + 3), name=self.id,
                              service_only=True)
        self.slots: dict[UUID, Slot] = {}
        self.wakeup = asyncio.Event()
        self.stopping = asyncio.Event()
        self.draining = False
        self.last_heartbeat: float | None = None
        self.claim_loop_alive = 0.0
        self.db_ok = False
        self.worker_type: WorkerType | None = None
        self.runtime: Runtime | None = None
        self.limiter: Limiter | None = None
        self.disk_low = False
        self._log_buffer: list[tuple[Any, ...]] = []
        self.results = ResultWriter(self.with_db, self.id)
        self.secrets_keyring = orgsecrets.Keyring.from_env()  # per-org secrets (#19); None: none configured
        self._tasks: list[asyncio.Task[Any]] = []
        self._drops: set[asyncio.Task[None]] = set()  # workspace removals after a cancel (held: not collected)

    # -- database helpers --------------------------------------------------------------

    async def with_db(self, fn: Callable[[Any], Awaitable[T]], *, attempts: int | None = None) -> T:
        """Run fn(conn) in a service-role transaction, retrying with backoff while the DB is away."""
        delay, tries = 0.2, 0
        while True:
            try:
                async with as_service(self.pool) as conn:
                    result = await fn(conn)
                self.db_ok = True
                return result
            except DB_ERRORS as exc:
                self.db_ok = False
                tries += 1
                if attempts is not None and tries >= attempts:
                    raise
                self.log("warning", f"database unavailable, retrying in {delay:.1f}s: {str(exc).strip()[:200]}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def log(self, level: str, message: str, **data: Any) -> None:
        """A worker-level line: JSON on stdout, and buffered for eve.worker_logs."""
        getattr(log, level if level != "warn" else "warning")(message, extra={
            "worker_id": self.id, "worker_type": self.config.worker_type, "data": data or None})
        self._log_buffer.append((level, message, data, datetime.now(timezone.utc)))
        del self._log_buffer[:-500]

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.config
        # refuses to start (SandboxUnavailable) rather than run agents unconfined by surprise
        self.runtime = Runtime.create(cfg.sandbox, workspace_root=cfg.workspace_root, hide=cfg.sandbox_hide,
                                      uid_base=cfg.sandbox_uid_base, network=cfg.agent_network,
                                      net_rules=egress.base_rules(cfg.agent_net_allow))
        if self.runtime.mode == "uid":
            # no PID namespace: agents of a killed previous incarnation may still run as our slot uids
            leftovers = kill_uid_processes(self.runtime.slot_uids(cfg.slots))
            if leftovers:
                self.log("warning", f"killed {len(leftovers)} leftover agent process(es) of a previous run",
                         pids=leftovers)
            if (why := await asyncio.to_thread(self.runtime.install_check)) is not None:
                self.log("warning", why)
        self.runtime.prepare_workspace_root(cfg.workspace_root)
        self.limiter = Limiter.create(cfg.agent_limits, worker_id=self.id, sandbox=self.runtime.mode,
                                      requested=cfg.agent_limits_mechanism)
        await self.pool.open(wait=False)
        # SIGTERM while the database is still unreachable: stop now, not after the retries
        starting = asyncio.ensure_future(self._start_up())
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            log.warning("stopped before the database could be reached", extra={"worker_id": self.id})
            await self.pool.close()
            return
        starting.result()
        self._tasks = [asyncio.create_task(t, name=n) for n, t in (
            ("listener", self._listen()), ("heartbeat", self._heartbeat()), ("reaper", self._reap()),
            ("fence", self._fence_watch()))]
        if (cron := scheduler.start(self.pool, cfg.dsn, name=self.id)) is not None:
            self._tasks.append(cron)  # cron schedules: every worker tries each tick, one wins
        if (hooks := outbox.start(self.pool, cfg.dsn, self.secrets_keyring)) is not None:
            self._tasks.append(hooks)  # webhook deliveries: every worker claims some (SKIP LOCKED)
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.limiter is not None:
                self.limiter.close()  # its agents' cgroups are gone with them; its own dirs go too
            self.log("info", f"worker {self.id} stopped")
            try:  # bounded: a worker told to stop does not wait out the pool's timeouts
                await asyncio.wait_for(self._say_stopped(), 10)
            except (asyncio.TimeoutError, *DB_ERRORS):
                pass
            await self.pool.close()

    async def _say_stopped(self) -> None:
        await self.with_db(lambda c: workers.stopped(c, self.id), attempts=3)
        await self._flush_logs()

    async def _start_up(self) -> None:
        """Everything before the first claim that needs the database (retried while it is away)."""
        cfg = self.config
        assert self.runtime is not None
        self.worker_type = await self.with_db(lambda c: queue.get_worker_type(c, cfg.worker_type))
        if self.limiter is not None:  # (run() makes it) a worker type narrows the worker's limits, never widens
            self.limiter.limits = agent_limits.narrow(cfg.agent_limits, self.worker_type.config.get("limits"))
        await self.with_db(lambda c: workers.register(
            c, worker_id=self.id, worker_type=cfg.worker_type, hostname=socket.gethostname(), pid=os.getpid(),
            version=__version__, slots=cfg.slots, sandbox=self.runtime.mode, network=self.runtime.network,
            limits=self.limiter.describe() if self.limiter else None))
        self.log("info", f"worker {self.id} started: type={cfg.worker_type} slots={cfg.slots} "
                         f"workspace={cfg.workspace_root} sandbox={self.runtime.mode} ({self.runtime.reason}); "
                         f"{self.runtime.network_reason}; "
                         + (self.limiter.summary() if self.limiter else "agent limits: none (no limiter)"))
        if self.runtime.mode == "none":
            self.log("warning", "SANDBOX DISABLED (--sandbox none): agents run with this worker's uid and can "
                                "read its files and processes; use it only for development")
        released = await self.with_db(lambda c: queue.release_claims(c, self.id))
        if released.requeued or released.failed:
            self.log("info", f"previous run of {self.id} held {len(released.requeued) + len(released.failed)} "
                             "request(s): requeued at once", requeued=[str(i) for i in released.requeued],
                     failed=[str(i) for i in released.failed])
        keep = await self.with_db(lambda c: waiting.parked_among(c, self._workspace_ids()))
        # cancelled while parked (or pending) when no worker of this host was listening
        abandoned = await self.with_db(lambda c: waiting.abandoned_among(c, self._workspace_ids()))
        self._sweep_workspaces(dead=[*released.requeued, *released.failed, *abandoned], keep=keep)

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            self.log("info", "stopping: no new claims; waiting for running requests",
                     running=len(self.slots), grace_s=self.config.grace_s)
        self.stopping.set()
        self.draining = True
        self.wakeup.set()

    async def _drain(self) -> None:
        if not self.slots:
            return
        tasks = [s.task for s in self.slots.values()]
        done, pending = await asyncio.wait(tasks, timeout=self.config.grace_s)
        if pending:
            self.log("warning", f"grace period over; requeueing {len(pending)} running request(s)")
            for slot in list(self.slots.values()):
                slot.shutdown = True
                slot.cancel.set()
            await asyncio.wait(pending, timeout=30)

    # -- claiming --------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        cfg = self.config
        while not self.stopping.is_set():
            self.claim_loop_alive = time.monotonic()
            free = cfg.slots - len(self.slots)
            claimed: list[Request] = []
            if free > 0 and self._disk_ok():
                self.wakeup.clear()
                try:
                    claimed = await self.with_db(
                        lambda c: queue.claim(c, cfg.worker_type, self.id, limit=min(free, queue.MAX_CLAIM),
                                              settings=cfg.queue), attempts=1)
                    metrics.CLAIMS.labels("claimed" if claimed else "empty").inc()
                except DB_ERRORS:
                    metrics.CLAIMS.labels("error").inc()
                    await self._sleep(min(cfg.poll_interval_s, 1.0))
                    continue
                for req in claimed:
                    self._start(req)
            if not claimed or len(self.slots) >= cfg.slots:
                await self._sleep(cfg.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _start(self, req: Request) -> None:
        if self.limiter is not None and self.limiter.own_procs is not None:  # (#28: see Limiter.prime)
            asyncio.get_running_loop().run_in_executor(None, self.limiter.prime)
        used = {s.index for s in self.slots.values()}
        index = next(i for i in range(self.config.slots) if i not in used)
        slot = Slot(request=req, index=index,
                    task=asyncio.create_task(self._run_one(req), name=f"request-{req.id}"))
        self.slots[req.id] = slot
        metrics.SLOTS_BUSY.set(len(self.slots))
        slot.task.add_done_callback(lambda _t, rid=req.id: self._finished(rid))

    def _finished(self, request_id: UUID) -> None:
        self.slots.pop(request_id, None)
        metrics.SLOTS_BUSY.set(len(self.slots))
        self.wakeup.set()

    # -- one request -------------------------------------------------------------------------

    async def _run_one(self, req: Request) -> None:
        try:
            await self._run_one_turn(req)
        finally:  # the turn's platform files (HOME, config copies) never carry over to the next
            await asyncio.to_thread(remove_turn, self.config.workspace_root, str(req.id))

    async def _run_one_turn(self, req: Request) -> None:
        cfg = self.config
        assert self.worker_type is not None
        slot = self.slots[req.id]
        extra = {"request_id": req.id, "org_id": req.org_id, "worker_type": req.worker_type, "worker_id": self.id}
        self.log("info", f"request claimed (attempt {req.attempts})", request_id=str(req.id))
        batcher = EventBatcher(self, req)
        started = time.monotonic()
        state: waiting.ResumeState | None = None
        turn = TurnInfo()
        token = False
        try:
            try:
                req = await self.with_db(lambda c: queue.mark_processing(c, req.id, self.id))
            except ResultConflict:
                log.warning("request taken over before it started", extra=extra)
                return
            resume = None
            if req.resumes > 0:
                state = await self.with_db(lambda c: waiting.resume_state(c, req.id))
                resume = await self._prepare_resume(req, state, batcher)
            elif _slack_thread(req):  # a mention in a Slack thread may continue its last request
                resume = await self._prepare_continuation(req, batcher)
            api = None
            if cfg.api_url:
                secret = await self.with_db(lambda c: reqtokens.issue(c, request_id=req.id, org_id=req.org_id,
                                                                      attempt=req.attempts))
                token, api = True, (cfg.api_url, secret)
            tenant = await self.with_db(lambda c: orgsecrets.load_for_org(c, self.secrets_keyring, req.org_id))
            settings = ExecutorSettings(workspace_root=cfg.workspace_root, isolate_home=cfg.isolate_home,
                                        sandbox=self.runtime, slot=slot.index, tenant=tenant, limiter=self.limiter)
            masker = tenant.masker  # the org's secret values never reach events or the result
            outcome = masker.outcome(await execute(req, self.worker_type, settings, masker.wrap(batcher.emit),
                                                   slot.cancel, resume=resume, turn=turn, api=api))
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill the worker
            log.exception("executor failed", extra=extra)
            outcome = Outcome(status="failed", error=f"worker error: {exc!r}", error_code="variant_crashed",
                              retryable=True)
        wants_wait = False
        if token:  # the agent is gone: its credential goes with it (and did it ask to wait?)
            try:
                wants_wait = await self.with_db(lambda c: waiting.end_turn(c, req.id, self.id), attempts=5)
            except DB_ERRORS:
                log.warning("could not revoke the request token; it dies with the attempt anyway", extra=extra)
        await batcher.close()
        if slot.fenced:
            # the lease is (about to be) gone: another worker may already run it; write nothing
            log.warning("claim lost; agent stopped, no result written", extra=extra)
            return
        if slot.shutdown:
            await self._give_back(req, extra)
            return
        if outcome.status == "success" and wants_wait:
            parked = await self._park(req, turn, outcome, state, extra)
            if parked is not None:
                return
            outcome = Outcome(status="failed", error_code="agent_error", output=outcome.output,
                              error="the agent asked to wait, but its Claude Code session could not be stored "
                                    "(no session id, no transcript, or a transcript over its size cap); it cannot be resumed")
        final = outcome.status in ("success", "cancelled") or not outcome.retryable
        if final and state is not None:
            outcome = waiting.add_totals(outcome, state.session)
        await self._report(req, outcome, extra, time.monotonic() - started)
        if final and _slack_thread(req):
            await self._keep_session(req, turn, outcome, extra)
        if final and state is not None:
            ids = state.wait_ids
            await self.with_db(lambda c: waiting.delivered(c, ids), attempts=5)  # (the result dropped the session)
        if not cfg.keep_workspaces and outcome.status in ("success", "cancelled"):
            self._remove_workspace(req.id)

    async def _prepare_continuation(self, req: Request, batcher: EventBatcher) -> Resume | None:
        """A continuation (migration 0013): the previous request's kept session, resumed with
        this request's own prompt; None (start afresh) when it continues nothing or nothing was kept."""
        cont = await self.with_db(lambda c: waiting.continuation(c, req.id))
        if cont is None:
            return None
        if cont["session_id"] is None:
            await batcher.emit("resumed", {"attempt": req.attempts, "continues": str(cont["continues"]),
                                           "session": None})
            return None
        state = waiting.ResumeState(session=cont, wait_ids=[], outcomes=[])
        return await self._prepare_resume(req, state, batcher, continues=cont["continues"])

    async def _keep_session(self, req: Request, turn: TurnInfo, outcome: Outcome, extra: dict[str, Any]) -> None:
        """A finished Slack-thread request keeps its final session (a mention may continue it).
        Best effort: without it a continuation starts afresh."""
        if not turn.session_id or turn.workspace is None or not turn.workspace.is_dir():
            return
        try:
            transcript = await asyncio.to_thread(_load_transcript, turn)
            if transcript is None:
                return
            data = transcript.data
            if data is None:
                log.warning("the session transcript is over its size cap; not kept for a continuation", extra=extra)
                return
            archive = await asyncio.to_thread(self._archive, turn.workspace)
            await self.with_db(lambda c: waiting.keep(
                c, request_id=req.id, org_id=req.org_id, session_id=turn.session_id or "", transcript=data,
                transcript_path=transcript.rel, archive=archive, host=socket.gethostname(),
                workspace_path=str(turn.workspace), outcome=outcome), attempts=5)
        except (OSError, *DB_ERRORS):
            log.warning("could not keep the session for a continuation", extra=extra, exc_info=True)

    async def _prepare_resume(self, req: Request, state: waiting.ResumeState, batcher: EventBatcher,
                              continues: UUID | None = None) -> Resume | None:
        """Put the stored workspace back and say how to resume; None: no session, start afresh.
        `continues`: the session is that earlier request's, resumed with this request's prompt."""
        cfg = self.config
        sess = state.session
        if sess is None:  # nothing stored (a turn that waited before sessions were kept): tell it in the prompt
            req.prompt = f"{req.prompt}\n\n{resume_prompt(state.outcomes, workspace_kept=False)}"
            await batcher.emit("resumed", {"attempt": req.attempts, "turn": req.resumes + 1, "session": None,
                                           "outcomes": len(state.outcomes)})
            return None
        path = cfg.workspace_root / str(req.id)
        # a continuation never takes the earlier request's directory: the archive only
        here = sess["host"] == socket.gethostname() and cfg.reuse_local_workspaces and continues is None
        left = Path(sess["workspace_path"]) if sess["workspace_path"] else None
        if here and left is not None and left == path and path.is_dir():
            how = "reused"
        elif here and left is not None and left.is_dir():
            await asyncio.to_thread(self._move_workspace, left, path)
            how = "moved"
        elif sess["workspace_archive"] is not None and await asyncio.to_thread(
                self._restore, bytes(sess["workspace_archive"]), path):
            how = "restored"
        else:
            safefs.remove_tree(path)
            how = "lost"
        data: dict[str, Any] = {"attempt": req.attempts, "turn": req.resumes + 1,
                                "session_id": sess["session_id"], "workspace": how, "outcomes": len(state.outcomes)}
        if continues is not None:
            data["continues"] = str(continues)
        await batcher.emit("resumed", data)
        if continues is None:
            prompt = resume_prompt(state.outcomes, workspace_kept=how != "lost")
        else:
            prompt = req.prompt + ("" if how != "lost" else "\n\n(Your workspace files from before were not kept: "
                                                             "they were over the size cap; only this conversation was.)")
        return Resume(session_id=sess["session_id"], transcript=bytes(sess["transcript"]), prompt=prompt)

    def _archive(self, workspace: Path) -> bytes | None:
        return archive_workspace(workspace, self.config.session_archive_cap_bytes,
                                 self.config.session_unpacked_cap_bytes)

    def _restore(self, archive: bytes, path: Path) -> bool:
        """Unpack a stored workspace; False (nothing left at `path`) when it is over the cap."""
        try:
            restore_workspace(archive, path, self.config.session_unpacked_cap_bytes)
        except ArchiveTooLarge as exc:
            log.warning("stored workspace not restored: %s", exc)
            return False
        return True

    @staticmethod
    def _move_workspace(src: Path, dest: Path) -> None:
        safefs.remove_tree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dest))

    async def _park(self, req: Request, turn: TurnInfo, outcome: Outcome, state: waiting.ResumeState | None,
                    extra: dict[str, Any]) -> str | None:
        """Store the session and park the request; None when there is no session to store."""
        if not turn.session_id or turn.workspace is None:
            return None
        transcript = await asyncio.to_thread(_load_transcript, turn)
        if transcript is None:
            log.warning("no transcript for session %s", turn.session_id, extra=extra)
            return None
        data, rel = transcript.data, transcript.rel
        if data is None:
            log.warning("the transcript of session %s is over its size cap", turn.session_id, extra=extra)
            return None
        archive = await asyncio.to_thread(self._archive, turn.workspace)
        status = await self.with_db(lambda c: waiting.park(
            c, request_id=req.id, org_id=req.org_id, worker_id=self.id, session_id=turn.session_id or "",
            transcript=data, transcript_path=rel, archive=archive, host=socket.gethostname(),
            workspace_path=str(turn.workspace), outcome=outcome))
        if status is None:
            log.warning("request taken over before it could be parked; nothing written", extra=extra)
            return "lost"
        if state is not None:
            ids = state.wait_ids
            await self.with_db(lambda c: waiting.delivered(c, ids), attempts=5)
        self.log("info", f"request parked: {status}", request_id=str(req.id), session_id=turn.session_id,
                 workspace_archive_bytes=len(archive) if archive is not None else None)
        return status

    async def _give_back(self, req: Request, extra: dict[str, Any]) -> None:
        try:
            await self.with_db(lambda c: queue.requeue(c, req, self.id, "worker_shutdown"), attempts=5)
            log.info("requeued on shutdown", extra=extra)
        except (ResultConflict, *DB_ERRORS):
            log.warning("could not requeue on shutdown; the lease will expire and the reaper requeues it",
                        extra=extra)

    async def _report(self, req: Request, outcome: Outcome, extra: dict[str, Any], seconds: float) -> None:
        """Write the result; held and retried while the database is away, never dropped."""
        try:
            if outcome.status in ("success", "cancelled") or not outcome.retryable:
                await self.results.complete(req, outcome)  # coalesced with others finishing now
            else:
                await self.with_db(lambda c: queue.fail(c, req, self.id, outcome, settings=self.config.queue))
        except ResultConflict as exc:
            log.warning("result not written: %s", exc.message, extra=extra)
            return
        metrics.REQUESTS.labels(req.worker_type, outcome.status).inc()
        metrics.DURATION.labels(req.worker_type).observe(seconds)
        if outcome.cost_usd:
            metrics.COST.labels(str(req.org_id), req.worker_type).inc(float(outcome.cost_usd))
        usage = (outcome.output or {}).get("usage", {}) if isinstance(outcome.output, dict) else {}
        for direction, key in (("input", "input_tokens"), ("output", "output_tokens"),
                               ("cache_read", "cache_read_input_tokens"),
                               ("cache_creation", "cache_creation_input_tokens")):
            if usage.get(key):
                metrics.TOKENS.labels(direction).inc(int(usage[key]))
        self.log("info", f"request finished: {outcome.status}"
                 + (f" ({outcome.error_code})" if outcome.error_code else ""), request_id=str(req.id))

    # -- background loops ---------------------------------------------------------------------

    async def _listen(self) -> None:
        if not self.config.listen:
            return
        delay = 0.5
        while True:
            try:
                conn = await connect(self.config.dsn, autocommit=True)
                try:
                    await conn.execute("LISTEN eve_requests")
                    await conn.execute("LISTEN eve_cancel")
                    delay = 0.5
                    self.wakeup.set()  # catch up with anything inserted while we were not listening
                    self._drop_abandoned_soon(self._workspace_ids())  # and cancelled meanwhile
                    async for note in conn.notifies():
                        if note.channel == "eve_requests" and note.payload == self.config.worker_type:
                            self.wakeup.set()
                        elif note.channel == "eve_cancel":
                            self._cancel(note.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                self.log("warning", f"listener lost the database; reconnecting in {delay:.1f}s: "
                                    f"{str(exc).strip()[:200]}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _cancel(self, request_id: str) -> None:
        """eve_cancel: stop the agent of a slot; or, for a request this worker does not run whose
        workspace sits under its root (a parked request cancelled while waiting, 0019), remove
        that workspace once the database says nobody will resume it."""
        for rid, slot in self.slots.items():
            if str(rid) == request_id:
                if not slot.cancel.is_set():
                    self.log("info", "cancel requested; stopping the agent", request_id=request_id)
                    slot.cancel.set()
                return
        try:
            rid = UUID(request_id)
            here = stat.S_ISDIR(os.lstat(self.config.workspace_root / str(rid)).st_mode)
        except (ValueError, OSError):
            return
        if here:
            self._drop_abandoned_soon([rid])

    def _drop_abandoned_soon(self, ids: list[UUID]) -> None:
        if ids and not self.config.keep_workspaces:
            task = asyncio.create_task(self._drop_abandoned(ids), name="drop-abandoned")
            self._drops.add(task)
            task.add_done_callback(self._drops.discard)

    async def _drop_abandoned(self, ids: list[UUID]) -> None:
        """Remove the workspaces among `ids` whose request was cancelled unclaimed (0019)."""
        try:
            abandoned = await self.with_db(lambda c: waiting.abandoned_among(c, ids), attempts=3)
        except DB_ERRORS:
            return  # the next (re)connect of the listener, or the next start, removes them
        for rid in abandoned - set(self.slots):
            await asyncio.to_thread(self._remove_workspace, rid)
            self.log("info", "removed the workspace of a request cancelled while it waited", request_id=str(rid))

    async def _heartbeat(self) -> None:
        q = self.config.queue
        interval = max(0.2, min(q.heartbeat_seconds, q.lease_seconds / 3))
        while True:
            try:
                ids = list(self.slots)
                asked = time.monotonic()
                cancels = await self.with_db(
                    lambda c: queue.renew_leases(c, self.id, ids, settings=self.config.queue), attempts=1)
                for rid in ids:
                    slot = self.slots.get(rid)
                    if slot is None:
                        continue
                    if rid in cancels:
                        slot.renewed_at = asked
                    elif not slot.fenced:  # someone else holds it now (reaped, requeued): stop at once
                        self._fence(slot, "the claim was taken over")
                for rid, wanted in cancels.items():
                    if wanted:
                        self._cancel(str(rid))
                state = "draining" if self.draining else ("busy" if self.slots else "idle")
                current = next(iter(self.slots), None)
                if await self.with_db(lambda c: workers.heartbeat(c, self.id, state=state, current_request_id=current,
                                                                  disk_low=self.disk_low), attempts=1):
                    if not self.stopping.is_set():
                        self.log("info", "drain requested by an operator")
                        self.request_stop()
                await self._flush_logs()
                self.last_heartbeat = time.time()
            except DB_ERRORS:
                pass
            await asyncio.sleep(interval)

    async def _flush_logs(self) -> None:
        if self._log_buffer:
            batch, self._log_buffer = self._log_buffer, []
            await self.with_db(lambda c: workers.write_logs(c, self.id, batch), attempts=1)

    def _fence(self, slot: Slot, why: str) -> None:
        slot.fenced = True
        slot.cancel.set()
        self.log("warning", f"fencing: stopping the agent of {slot.request.id}: {why}",
                 request_id=str(slot.request.id))

    async def _fence_watch(self) -> None:
        """Stop an agent before its lease can run out: never two live agents for one request.

        Independent of the heartbeat, which may hang on a partitioned network: if a slot's
        lease was last renewed longer ago than the lease minus a margin, its agent stops
        and the worker writes no result; the reaper requeues the request elsewhere.
        """
        q = self.config.queue
        limit = q.lease_seconds - min(q.fence_margin_seconds, q.lease_seconds / 3)
        while True:
            await asyncio.sleep(min(0.5, limit / 4))
            now = time.monotonic()
            for slot in list(self.slots.values()):
                if not slot.fenced and now - slot.renewed_at > limit:
                    self._fence(slot, f"lease not renewed for {now - slot.renewed_at:.1f}s "
                                      f"(lease {q.lease_seconds:g}s); the database is unreachable")

    # -- workspaces and disk ---------------------------------------------------------------------

    def _remove_workspace(self, request_id: UUID) -> None:
        safefs.remove_tree(self.config.workspace_root / str(request_id))
        remove_turn(self.config.workspace_root, str(request_id))

    def _workspace_ids(self) -> list[UUID]:
        ids = []
        try:
            for entry in os.scandir(self.config.workspace_root):
                try:
                    ids.append(UUID(entry.name))
                except ValueError:
                    continue
        except OSError:
            pass
        return ids

    def _sweep_workspaces(self, dead: list[UUID], keep: set[UUID] = frozenset()) -> None:  # type: ignore[assignment]
        """At start: drop the workspaces of dead attempts, and failed ones past keep_failed_s —
        never one of a request that waits (its session resumes in it)."""
        if self.config.keep_workspaces:
            return
        for rid in dead:
            self._remove_workspace(rid)
        cutoff = time.time() - self.config.keep_failed_s
        try:
            entries = list(os.scandir(self.config.workspace_root))
        except OSError:
            return
        try:
            entries += list(os.scandir(self.config.workspace_root / TURNS))
        except OSError:
            pass
        kept = {str(k) for k in keep}
        for entry in entries:
            if entry.name in kept or not _is_uuid(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    safefs.remove_tree(Path(entry.path))
            except OSError:
                continue

    def _disk_ok(self) -> bool:
        """Below the free-disk floor the worker stops claiming (and says so) until space is back."""
        try:
            free_mb = shutil.disk_usage(self.config.workspace_root).free // (1024 * 1024)
        except OSError:
            return True
        low = free_mb < self.config.min_free_disk_mb
        if low != self.disk_low:
            self.disk_low = low
            if low:
                self.log("warning", f"disk_low: {free_mb} MB free under {self.config.workspace_root} "
                                    f"(floor {self.config.min_free_disk_mb} MB); not claiming")
            else:
                self.log("info", "disk space is back above the floor; claiming again")
        return not low

    async def _reap(self) -> None:
        q = self.config.queue
        interval = max(0.5, min(q.reaper_seconds, q.lease_seconds / 2))
        expired_at = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                report = await self.with_db(lambda c: queue.reap(c), attempts=1)
                if time.monotonic() - expired_at > 60:  # kept Slack-thread sessions past their age (0013)
                    expired_at = time.monotonic()
                    max_age = self.config.kept_session_days * 86_400
                    await self.with_db(lambda c: waiting.expire_kept(c, max_age), attempts=1)
                if report.requeued or report.failed:
                    self.log("info", f"reaper: requeued {len(report.requeued)}, failed {len(report.failed)}",
                             requeued=[str(i) for i in report.requeued], failed=[str(i) for i in report.failed])
            except DB_ERRORS:
                pass

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy?, body) for the health port. The port is unauthenticated, so the body counts
        busy slots but names no request: request ids are tenants' data (GET /workers shows them
        to their org and operators only)."""
        loop_fresh = time.monotonic() - self.claim_loop_alive < self.config.poll_interval_s * 3 + 5
        ok = self.db_ok and (loop_fresh or self.stopping.is_set())
        return ok, {
            "status": "ok" if ok else "unhealthy", "worker_id": self.id, "worker_type": self.config.worker_type,
            "slots": self.config.slots, "slots_busy": len(self.slots), "draining": self.draining,
            "database": "ok" if self.db_ok else "down", "last_heartbeat": self.last_heartbeat,
            "sandbox": self.runtime.mode if self.runtime else None,
            "network": self.runtime.network if self.runtime else None, "disk_low": self.disk_low,
            "limits": self.limiter.describe(public=True) if self.limiter else None,  # no host paths
        }
