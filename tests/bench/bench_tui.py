"""`eve ui` footprint in a real terminal (tmux) against a real API: first paint, idle CPU, memory.

First paint is measured from process start to the first screen that shows live data;
idle CPU over 20 s at the default 2 s refresh, as a share of one core; RSS at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench._stack import bench_database, rss_mb
from tests.support.apiserver import start_api

IDLE_SECONDS = float(os.environ.get("EVE_BENCH_TUI_IDLE_S", "20"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ui_pid(session: str) -> int:
    pane_pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                                  text=True).stdout.strip())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pane_pid:
                return int(pid)
        except (OSError, ValueError):
            continue
    return pane_pid


def run() -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise RuntimeError("tmux is needed for the TUI benchmark (apt-get install tmux)")
    res: dict[str, Any] = {"idle_seconds": IDLE_SECONDS}
    session = f"eve-bench-ui-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="eve-bench-tui-") as tmp_s, \
            bench_database(Path(tmp_s)) as (dsn, t):
        api = start_api(dsn, Path(tmp_s), env={"EVE_LOG_LEVEL": "WARNING"})
        try:
            api.wait_ready()
            env = {**os.environ, "EVE_API_URL": api.url, "EVE_API_KEY": t.api_key, "TERM": "xterm-256color"}
            start = time.perf_counter()
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                            f"{sys.executable} -m eve.cli ui"], env=env, check=True)
            while "● live" not in subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                                 capture_output=True, text=True).stdout:
                if time.perf_counter() - start > 30:
                    raise TimeoutError("eve ui never showed live data")
                time.sleep(0.02)
            res["first_paint_s"] = time.perf_counter() - start
            pid = ui_pid(session)
            time.sleep(3)  # past start-up: measure the steady idle state
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            res["idle_cpu_percent"] = 100 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
            res["rss_mb"] = rss_mb(pid)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            api.stop()
    print("| measure | value | target |\n|---|---|---|")
    print(f"| first paint with live data (incl. interpreter start) | {res['first_paint_s']:.2f} s | ≤ 1 s |")
    print(f"| idle CPU at 2 s refresh | {res['idle_cpu_percent']:.1f} % of a core | ≤ 3 % |")
    print(f"| memory (RSS) | {res['rss_mb']:.0f} MB | ≤ 150 MB |")
    return res
