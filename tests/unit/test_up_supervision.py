"""`eve up`'s pure parts: the crash window, what each child gets, the worker command line."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from eve.cli.up import CrashWindow, child_envs, worker_command
from eve.roles import LoginRole, dsn_for


def test_crash_window_restarts_at_once_then_backs_off_then_gives_up():
    w = CrashWindow(limit=4, window_s=60)
    exits: deque[float] = deque()
    assert w.record(exits, 0.0) == (False, 0.0)
    assert w.record(exits, 1.0) == (False, 0.0)
    assert w.record(exits, 2.0) == (False, 0.5)
    assert w.record(exits, 3.0) == (False, 1.0)
    assert w.record(exits, 4.0)[0] is True


def test_crash_window_forgets_old_exits():
    w = CrashWindow(limit=2, window_s=10)
    exits: deque[float] = deque()
    for t in (0.0, 5.0, 20.0, 25.0):
        assert w.record(exits, t)[0] is False
    assert w.record(exits, 26.0)[0] is True


def test_children_get_their_own_dsn_and_only_the_api_the_jwt_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:superpw@h/db")
    monkeypatch.setenv("JWT_SECRET", "outer")
    monkeypatch.setenv("PGPASSWORD", "superpw")
    api, worker = child_envs(("api-dsn", "worker-dsn"), "j" * 64, "http://127.0.0.1:3000")
    assert api["DATABASE_URL"] == "api-dsn" and api["JWT_SECRET"] == "j" * 64
    assert worker["DATABASE_URL"] == "worker-dsn" and "JWT_SECRET" not in worker
    assert "superpw" not in repr(api) + repr(worker)


def test_worker_command_names_and_separates_workers(tmp_path: Path):
    one = worker_command("general", 1, 0, tmp_path, "auto")
    two = worker_command("general", 2, 1, tmp_path, "uid", "open")
    assert one[one.index("--id") + 1] == "general-1" and two[two.index("--id") + 1] == "general-2"
    assert one[one.index("--sandbox-hide") + 1] == str(tmp_path)
    assert two[two.index("--sandbox") + 1] == "uid"
    assert one[one.index("--sandbox-uid-base") + 1] != two[two.index("--sandbox-uid-base") + 1]
    assert (one[one.index("--agent-network") + 1], two[two.index("--agent-network") + 1]) == ("auto", "open")


def test_dsn_for_swaps_the_login_and_quotes_the_password():
    dsn = dsn_for("postgresql://postgres:pw@127.0.0.1:5432/eve?sslmode=disable", LoginRole("eve_api_login", "eve_api",
                                                                                            "a/b@c:d"))
    assert dsn == "postgresql://eve_api_login:a%2Fb%40c%3Ad@127.0.0.1:5432/eve?sslmode=disable"


def test_api_processes_share_the_port_only_when_there_are_several(monkeypatch):
    from eve.cli.up import api_command, default_api_processes

    assert "--reuse-port" not in api_command(3000, 1)
    assert api_command(3000, 2)[-1] == "--reuse-port" and "3000" in api_command(3000, 2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_api_processes() == 1  # two cores: the workers and PostgreSQL need the other
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_api_processes() == 4
