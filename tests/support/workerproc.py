"""Start a real worker process for tests, and stop it by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from eve.pg import free_port
from tests.support.apiserver import ApiProcess, start_api


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    health_port: int
    log_path: Path
    workspace_root: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_healthy(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status, body = self.health()
                if status == 200:
                    return body
                last = body
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"worker not healthy after {timeout}s (last: {last})\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_worker(dsn: str, tmp: Path, *, worker_type: str = "general", slots: int = 1,
                 path_prepend: Path | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None, name: str = "worker") -> WorkerProcess:
    """`python -m eve.daemons.worker` on a free health port, logging to tmp/<name>.log."""
    port = free_port()
    workspace = tmp / f"{name}-ws"
    log_path = tmp / f"{name}.log"
    child_env = dict(os.environ)
    child_env.update({"DATABASE_URL": dsn, "EVE_POLL_INTERVAL": "2", "PYTHONUNBUFFERED": "1"})
    if path_prepend is not None:
        child_env["PATH"] = f"{path_prepend}{os.pathsep}{child_env.get('PATH', '')}"
    child_env.update(env or {})
    cmd = [sys.executable, "-m", "eve.daemons.worker", "--type", worker_type, "--slots", str(slots),
           "--health-port", str(port), "--health-host", "127.0.0.1", "--workspace-root", str(workspace),
           *(args or [])]
    log = open(log_path, "w")  # noqa: SIM115 - the child owns it until it exits
    proc = subprocess.Popen(cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    return WorkerProcess(proc=proc, health_port=port, log_path=log_path, workspace_root=workspace)


@contextmanager
def api_and_worker(dsn: str, tmp: Path, variant_bin: Path, *, name: str = "solo", slots: int = 1,
                   env: dict[str, str] | None = None) -> Iterator[tuple[ApiProcess, WorkerProcess]]:
    """An API and one general worker whose agents reach it (EVE_API_URL), both ready; both
    stopped afterwards, also when the test fails."""
    api = start_api(dsn, tmp)
    worker = None
    try:
        api.wait_ready()
        worker = start_worker(dsn, tmp, path_prepend=variant_bin, name=name, slots=slots,
                              env={"EVE_API_URL": api.url, **(env or {})})
        worker.wait_healthy()
        yield api, worker
    finally:
        if worker is not None:
            worker.stop()
        api.stop()
