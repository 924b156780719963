"""Start a real `python -m eve.daemons.api` process for tests and stop it by PID."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from eve.pg import free_port


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    url: str
    jwt_secret: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}:\n{self.output()}")
            try:
                r = httpx.get(f"{self.url}/health", params={"ready": 1}, timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"API not ready after {timeout}s (last: {last})\n{self.output()}")

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_api(dsn: str, tmp: Path, *, env: dict[str, str] | None = None, name: str = "api",
              jwt_secret: str | None = None, port: int | None = None, args: tuple[str, ...] = ()) -> ApiProcess:
    port = port or free_port()
    secret = jwt_secret or secrets.token_hex(32)
    log_path = tmp / f"{name}.log"
    child_env = {**os.environ, "DATABASE_URL": dsn, "JWT_SECRET": secret, "PYTHONUNBUFFERED": "1", **(env or {})}
    log = open(log_path, "w")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, "-m", "eve.daemons.api", "--host", "127.0.0.1", "--port", str(port),
                             *args],
                            env=child_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    return ApiProcess(proc=proc, url=f"http://127.0.0.1:{port}", jwt_secret=secret, log_path=log_path)
