"""Run one request through its variant and return the Outcome.

`execute()` resolves the variant, prepares the workspace, spawns
`<variant> --print --output-format stream-json --verbose [--model M] [--allowedTools ...] -- <prompt>`
in its own process group with the allowlisted environment, and streams stdout/stderr
line by line into events through `emit` while the agent works. Timeout and cancel kill
the whole process group (SIGTERM, then SIGKILL after a grace), so tools the agent
started die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eve import metrics
from eve.errors import ConfigError, EveError
from eve.executor import egress
from eve.executor.cgroups import AgentGroup, Limiter
from eve.executor.limits import AgentLimits, narrow
from eve.executor import variant as variants
from eve.executor.env import build_env
from eve.executor.sandbox import Runtime, end_uid, remove_ipc, remove_owned, variant_config_dirs
from eve.executor.session import Resume, TurnInfo, restore_transcript
from eve.executor.stream import StreamParser
from eve.executor.watch import Hit, Watch, time_hit
from eve.executor.workspace import prepare, skills_for
from eve.models import Outcome, Request, WorkerType

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
DEFAULT_TIMEOUT_MS = 1_800_000
MAX_LINE = 8 * 1024 * 1024


@dataclass
class ExecutorSettings:
    workspace_root: Path
    kill_grace_s: float = 10.0
    isolate_home: bool = False
    worker_env: Mapping[str, str] | None = None
    sandbox: Runtime | None = None  # None: no sandbox (mode none)
    slot: int = 0  # which of the worker's slots runs this request (picks the agent's uid)
    tenant: Any = None  # eve.orgsecrets.TenantEnv: the org's secrets and platform-key policy
    limiter: Limiter | None = None  # the agent's limits and what holds them (eve.executor.cgroups); None: none


def timeout_ms(request: Request, worker_type: WorkerType) -> int:
    return int(request.config.get("timeout_ms") or worker_type.config.get("timeout_ms") or DEFAULT_TIMEOUT_MS)


def command(path: str, request: Request, worker_type: WorkerType, resume: Resume | None = None) -> list[str]:
    """The variant's argv; a resumed turn continues the stored session with the outcomes as its prompt."""
    cmd = [path, "--print", "--output-format", "stream-json", "--verbose"]
    if resume is not None:
        cmd += ["--resume", resume.session_id]
    model = request.config.get("model") or worker_type.config.get("model")
    if model:
        cmd += ["--model", str(model)]
    tools = request.config.get("allowed_tools") or worker_type.config.get("allowed_tools") or []
    if tools:
        cmd += ["--allowedTools", ",".join(str(t) for t in tools)]
    return [*cmd, "--", resume.prompt if resume is not None else request.prompt]


async def kill_group(proc: asyncio.subprocess.Process, grace: float, uid: int | None = None) -> None:
    """SIGTERM the process group, SIGKILL it if anything is left after `grace` seconds.

    With a per-slot uid, whatever still runs as that uid is killed too: a tool that left
    the process group (setsid) cannot outlive its request.
    """
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    try:
        if pgid is not None:
            await _kill_pgid(proc, pgid, grace)
    finally:
        if uid is not None:
            await asyncio.to_thread(end_uid, uid)


async def _end_turn_uid(uid: int, emit: Emit) -> None:
    """uid mode, the turn is over: every process of its uid is killed and counted gone, and what
    it left in the host's shared temp dirs is removed, before any result is written."""
    left = await asyncio.to_thread(end_uid, uid)
    removed = await asyncio.to_thread(remove_owned, uid) + await asyncio.to_thread(remove_ipc, uid)
    if left:
        await emit("stderr", {"line": f"{len(left)} process(es) of uid {uid} survived the kill: {left[:10]}"})
    if removed:
        await emit("stderr", {"line": f"removed {len(removed)} thing(s) the agent left in shared temp dirs "
                                      f"and System V IPC: {removed[:10]}"})


async def _kill_pgid(proc: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except asyncio.TimeoutError:
            continue
        # the leader is gone; make sure nothing it started lingers in the group
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


async def execute(
    request: Request,
    worker_type: WorkerType,
    settings: ExecutorSettings,
    emit: Emit,
    cancel: asyncio.Event,
    *,
    resume: Resume | None = None,
    turn: TurnInfo | None = None,
    api: tuple[str, str] | None = None,
) -> Outcome:
    """Everything between "claimed" and "write the result"; never raises for agent trouble.

    `resume` continues a stored session (its workspace already restored by the caller);
    `turn` is filled with what a later resume needs; `api` is (EVE_API_URL, EVE_API_TOKEN)
    for the agent's own `eve`.
    """
    async with contextlib.AsyncExitStack() as stack:  # the agent's egress proxy lives as long as it does
        return await _execute(request, worker_type, settings, emit, cancel, resume=resume, turn=turn, api=api,
                              stack=stack)


async def _execute(
    request: Request,
    worker_type: WorkerType,
    settings: ExecutorSettings,
    emit: Emit,
    cancel: asyncio.Event,
    *,
    resume: Resume | None = None,
    turn: TurnInfo | None = None,
    api: tuple[str, str] | None = None,
    stack: contextlib.AsyncExitStack,
) -> Outcome:
    turn = turn if turn is not None else TurnInfo()
    started = time.monotonic()
    worker_env = dict(settings.worker_env if settings.worker_env is not None else os.environ)
    name = variants.variant_name(request.config, worker_type.config)
    try:
        path = variants.resolve(name, worker_type.config, worker_env)
    except variants.VariantNotFound as exc:
        return Outcome(status="failed", error=exc.message, error_code="variant_not_found")
    try:
        ws = prepare(settings.workspace_root, str(request.id), request.attempts, skills_for(worker_type.config),
                     keep=resume is not None)
    except EveError as exc:
        return Outcome(status="failed", error=exc.message, error_code="workspace_error", retryable=True)
    for skill in ws.skills:
        await emit("skill_loaded", {"skill": skill})
    for skill in ws.missing_skills:
        await emit("stderr", {"line": f"skill {skill!r} is configured but not installed; skipped"})
    home = str(ws.home) if settings.isolate_home else worker_env.get("HOME", str(ws.home))
    env, skipped = build_env(worker_env, request_id=str(request.id), org_id=str(request.org_id),
                             user_id=str(request.user_id), worker_type=request.worker_type, home=home,
                             context=request.context, api=api, tenant=settings.tenant)
    for item in skipped:
        await emit("context_skipped", item)
    runtime = settings.sandbox or Runtime(mode="none")
    worker_home = worker_env.get("HOME") or str(ws.home)  # the HOME the variant's wrapper was written for
    try:
        proxy = None
        if runtime.network == "filtered":
            # the provider as the operator's wrapper and worker name it: a tenant's own
            # ANTHROPIC_BASE_URL (an org secret) opens nothing
            configs = variant_config_dirs(path, worker_home)
            urls = [*egress.variant_base_urls(path, worker_env, configs), *([api[0]] if api else [])]
            proxy = await stack.enter_async_context(egress.EgressProxy(
                egress.allowlist(base=runtime.net_rules, urls=urls),
                on_refused=lambda data: emit("egress_refused", data)))
        limiter = settings.limiter
        lim = _agent_limits(limiter, settings.tenant)  # the worker's (and type's), narrowed by the org's
        spawn = runtime.spawn(command(path, request, worker_type, resume), env=env, workspace=ws.path,
                              home_source=ws.home, request_id=str(request.id), slot=settings.slot, variant_path=path,
                              worker_home=worker_home, turn_dir=ws.turn,
                              egress_socket=proxy.socket_path if proxy else None,
                              tmp_bytes=lim.tmp_bytes if lim is not None and lim.tmp_mb else None)
        # limits (#28): the agent's own cgroup, joined by the child before it execs; gone after the turn
        group = limiter.group(str(request.id), uid=spawn.uid, limits=lim) if limiter is not None else None
        if group is not None:
            stack.push_async_callback(asyncio.to_thread, group.remove)
    except OSError as exc:
        return Outcome(status="failed", error=f"cannot prepare the sandbox: {exc}", error_code="workspace_error",
                       retryable=True)
    turn.workspace, turn.cwd_inside, turn.turn_dir = ws.path, spawn.workspace_inside, ws.turn
    turn.config_roots = runtime.config_roots(variant_path=path, worker_home=worker_home, home_source=ws.home,
                                             home=home, turn_dir=ws.turn)
    if resume is not None:
        try:  # where this agent's Claude Code will look for the session it resumes
            restore_transcript(turn.config_roots, spawn.workspace_inside, resume.session_id, resume.transcript,
                               uid=spawn.uid)
        except OSError as exc:
            return Outcome(status="failed", error=f"cannot restore the stored session: {exc}",
                           error_code="workspace_error", retryable=True)
    # uid mode has no PID namespace: whatever runs as the slot's uid belongs to this agent, and
    # nothing of an earlier turn may still run as it when this one starts
    sweep_uid = spawn.uid if runtime.mode == "uid" else None
    if sweep_uid is not None and (left := await asyncio.to_thread(end_uid, sweep_uid)):
        return Outcome(status="failed", error=f"the slot's uid {sweep_uid} still runs {len(left)} process(es) "
                                              "that could not be killed; not starting an agent beside them",
                       error_code="workspace_error", retryable=True)
    limit_s, capped = timeout_ms(request, worker_type) / 1000, False
    if lim is not None:
        limit_s, capped = lim.timeout_s(timeout_ms(request, worker_type))
    preexec = group.preexec(spawn.preexec) if group is not None else spawn.preexec  # type: ignore[arg-type]
    try:
        proc = await asyncio.create_subprocess_exec(
            *spawn.argv, cwd=spawn.cwd, env=spawn.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=MAX_LINE,
            preexec_fn=preexec,  # type: ignore[arg-type]
        )
    except OSError as exc:
        return Outcome(status="failed", error=f"cannot start variant {name} ({path}): {exc}",
                       error_code="variant_crashed", retryable=True)
    await emit("spawned", {"variant": name, "path": path, "pid": proc.pid, "workspace": spawn.workspace_inside,
                           "sandbox": runtime.mode, "network": runtime.network, "uid": spawn.uid,
                           "model": request.config.get("model") or worker_type.config.get("model"),
                           "timeout_ms": int(limit_s * 1000),
                           **({"limits": {"mechanism": limiter.mechanism, **lim.as_dict()}}
                              if limiter is not None and lim is not None else {})})
    parser = StreamParser()
    watcher = Watch(lim, group, [ws.path, ws.turn]) if lim is not None and group is not None else None
    stderr_tail: list[str] = []

    async def read_stdout() -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over MAX_LINE: skip it rather than die
                await emit("stderr", {"line": "(an output line over 8 MiB was dropped)", "stream": "stdout"})
                continue
            if not raw:
                return
            if watcher is not None:
                watcher.touch()
            for kind, data in parser.feed(raw.decode("utf-8", errors="replace")):
                await emit(kind, data)

    async def read_stderr() -> None:
        assert proc.stderr is not None
        while True:
            raw = await proc.stderr.readline()
            if not raw:
                return
            if watcher is not None:
                watcher.touch()
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                stderr_tail.append(line)
                del stderr_tail[:-20]
                await emit("stderr", {"line": line[:4000]})

    readers = asyncio.gather(read_stdout(), read_stderr())
    cancel_wait = asyncio.ensure_future(cancel.wait())
    watching = asyncio.ensure_future(watcher.run() if watcher is not None else asyncio.Event().wait())
    try:
        done, _ = await asyncio.wait({readers, cancel_wait, watching}, timeout=limit_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if watching in done or (not done and capped):
            # a limit: the whole agent goes at once, and the result is final (eve.executor.watch)
            hit = watching.result() if watching in done else time_hit(lim)  # type: ignore[arg-type]
            if group is not None:
                await asyncio.to_thread(group.kill)
            await kill_group(proc, 1.0)
            if sweep_uid is not None:  # (the uid's sweep, once, with its temp files and IPC)
                await _end_turn_uid(sweep_uid, emit)
            return await _limit_outcome(hit, request, limiter, group, emit, started)  # type: ignore[arg-type]
        if readers in done:
            readers.result()
            exit_code = await proc.wait()
            if sweep_uid is not None:  # a `setsid nohup` child must not outlive a successful turn either
                await _end_turn_uid(sweep_uid, emit)
            hit = await asyncio.to_thread(watcher.final) if watcher is not None else None
            if hit is not None:
                return await _limit_outcome(hit, request, limiter, group, emit, started)  # type: ignore[arg-type]
            if group is not None:
                await emit("resources", group.usage())
            elapsed = int((time.monotonic() - started) * 1000)
            turn.session_id = (parser.init or {}).get("session_id") or (parser.result or {}).get("session_id")
            turn.duration_ms = elapsed
            return parser.outcome(exit_code, stderr_tail="\n".join(stderr_tail), duration_ms=elapsed)
        reason = "cancelled" if cancel.is_set() else "timeout"
        await kill_group(proc, settings.kill_grace_s)
        if sweep_uid is not None:
            await _end_turn_uid(sweep_uid, emit)
        elapsed = int((time.monotonic() - started) * 1000)
        if reason == "cancelled":
            return Outcome(status="cancelled", error="cancelled by request", error_code="cancelled",
                           duration_ms=elapsed)
        return Outcome(status="timeout", error=f"no result within {limit_s:g} s; the agent was stopped",
                       error_code="timeout", duration_ms=elapsed)
    except BaseException:
        await kill_group(proc, 1.0, sweep_uid)  # worker shutting down or crashing: never leave the agent behind
        raise
    finally:
        cancel_wait.cancel()
        watching.cancel()
        if not readers.done():
            readers.cancel()
            try:
                await readers
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - readers die with the process
                pass


def _agent_limits(limiter: Limiter | None, tenant: Any) -> AgentLimits | None:
    """This agent's limits: the worker's (narrowed by its type at start), narrowed again by the
    org's own (`eve org limits SLUG --agent-...`; checked when set, so a bad one here is
    skipped rather than failing the request — it can only narrow anyway)."""
    if limiter is None:
        return None
    own = getattr(tenant, "agent_limits", None)
    if not own:
        return limiter.limits
    try:
        return narrow(limiter.limits, own, source="the org's agent limits")
    except ConfigError:
        return limiter.limits


async def _limit_outcome(hit: Hit, request: Request, limiter: Limiter, group: AgentGroup | None, emit: Emit,
                         started: float) -> Outcome:
    """The `limit_exceeded` event, the metric, and the final outcome of an agent a limit stopped."""
    data = hit.event(limiter.mechanism)
    if group is not None:
        data = {**group.usage(), **data}
    await emit("limit_exceeded", data)
    metrics.LIMITS.labels(request.worker_type, hit.limit).inc()
    return hit.outcome(int((time.monotonic() - started) * 1000))
