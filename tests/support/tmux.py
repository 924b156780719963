"""A real terminal for the console's tests and benchmark: one tmux session on a server of its own.

Why a server of its own (`tmux -L NAME`): on the default server, `kill-session -t NAME` for
a session that is already gone resolves NAME as a prefix and may kill the most recent
session instead — another test's, or the person's running the suite. Closing kills this
server only. Targets are exact (`=NAME:`) for the same reason.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from types import TracebackType


class Tmux:
    def __init__(self, name: str, *, width: int = 120, height: int = 40, timeout: float = 20) -> None:
        self.name = f"{name}-{os.getpid()}"
        self.width, self.height = width, height
        self.timeout = timeout  # how long wait_screen/wait_gone wait by default
        self._tmux = ["tmux", "-L", self.name]
        self._target = f"={self.name}:"

    def start(self, command: str, env: Mapping[str, str]) -> Tmux:
        """Run `command` (through the shell) in a detached session of the given size."""
        subprocess.run([*self._tmux, "new-session", "-d", "-s", self.name, "-x", str(self.width),
                        "-y", str(self.height), command], env=dict(env), check=True)
        return self

    def screen(self) -> str:
        return subprocess.run([*self._tmux, "capture-pane", "-p", "-t", self._target], capture_output=True,
                              text=True).stdout

    def wait_screen(self, text: str, timeout: float | None = None) -> str:
        """The screen once `text` is on it; fails with the screen as it is after `timeout`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            out = self.screen()
            if text in out:
                return out
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while text in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} is still on screen:\n{self.screen()}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        """As typed: tmux key names (`Enter`, `Escape`) or literal text."""
        subprocess.run([*self._tmux, "send-keys", "-t", self._target, *keys], check=True)

    def pane_pid(self) -> int:
        """The pid of the pane's shell."""
        return int(subprocess.run([*self._tmux, "display", "-p", "-t", self._target, "#{pane_pid}"],
                                  capture_output=True, text=True, check=True).stdout.strip())

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
