"""`eve db backup` / `eve db restore` on a real PostgreSQL: a round trip keeps everything,
and a restore that cannot finish changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import backup, queue
from eve.errors import EveError, ValidationError
from tests.support.tenants import make_tenant


def _snapshot(db_url: str) -> dict:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        return {t: c.execute(f"SELECT count(*) AS n FROM eve.{t}").fetchone()["n"]  # noqa: S608 - fixed names
                for t in ("orchestration_requests", "orchestration_results", "request_events", "organizations",
                          "api_keys", "schema_migrations")} | {
            "prompts": sorted(r["prompt"] for r in c.execute("SELECT prompt FROM eve.orchestration_requests"))}


async def _data(conn):
    tenant = await make_tenant(conn, "backed-up")
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt="keep me through the backup")
    await conn.execute("INSERT INTO eve.orchestration_results (request_id, org_id, status, summary) "
                       "VALUES (%s, %s, 'success', 'kept')", (req.id, tenant.org_id))
    await conn.execute("INSERT INTO eve.request_events (request_id, org_id, kind, data) "
                       "VALUES (%s, %s, 'text', '{\"text\": \"hello\"}')", (req.id, tenant.org_id))
    await conn.commit()
    return tenant, req


async def test_backup_wipe_restore_keeps_everything_and_row_level_security(db_url, conn, tmp_path):
    tenant, req = await _data(conn)
    before = _snapshot(db_url)
    done = backup.backup(db_url, tmp_path / "b" / "eve.dump")
    assert done.bytes > 0 and (done.path.stat().st_mode & 0o777) == 0o600
    with psycopg.connect(db_url, autocommit=True) as c:  # the wipe
        c.execute("DROP SCHEMA eve CASCADE")
    assert await backup.restore(db_url, done.path) == []  # nothing newer than the backup to apply
    assert _snapshot(db_url) == before
    with psycopg.connect(db_url, row_factory=dict_row) as c:  # the API's role still sees its own org only
        c.execute("SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', %s, true)",
                  (str(tenant.user_id),))
        assert [r["id"] for r in c.execute("SELECT id FROM eve.orchestration_requests")] == [req.id]


async def test_a_restore_refuses_to_replace_requests_unless_forced(db_url, conn, tmp_path):
    await _data(conn)
    done = backup.backup(db_url, tmp_path / "eve.dump")
    with pytest.raises(ValidationError, match="--force"):
        await backup.restore(db_url, done.path)
    await conn.execute("DELETE FROM eve.orchestration_results")
    await conn.execute("DELETE FROM eve.orchestration_requests")
    await conn.commit()
    await backup.restore(db_url, done.path, force=True)
    assert _snapshot(db_url)["prompts"] == ["keep me through the backup"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_a_restore_that_cannot_finish_changes_nothing(db_url, conn, tmp_path, damage):
    tenant, _ = await _data(conn)
    for i in range(4):  # data well past the table of contents: a cut file still lists, then fails midway
        await conn.execute("INSERT INTO eve.request_events (request_id, org_id, kind, data) "
                           "SELECT id, org_id, 'text', jsonb_build_object('text', md5(g::text) || %s) "
                           "FROM eve.orchestration_requests, generate_series(1, 3000) g", (str(i),))
    await conn.commit()
    before = _snapshot(db_url)
    good = backup.backup(db_url, tmp_path / "eve.dump").path
    bad = tmp_path / "bad.dump"
    data = good.read_bytes()
    bad.write_bytes(b"not a dump at all" * 100 if damage == "garbage" else data[: len(data) * 9 // 10])
    with pytest.raises(EveError):
        await backup.restore(db_url, bad, force=True)
    assert _snapshot(db_url) == before


def test_the_cli_backs_up_and_restores_with_clear_errors(db_url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    dump = tmp_path / "cli.dump"

    def eve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eve.cli", "db", *args, "--database-url", db_url], env=env,
                              capture_output=True, text=True, timeout=120)

    made = eve("backup", "--to", str(dump))
    assert made.returncode == 0 and "backed up to" in made.stdout, made.stderr
    assert db_url.split("@")[0].split(":")[-1] not in made.stdout + made.stderr  # no password echoed
    missing = eve("restore", str(tmp_path / "nope.dump"))
    assert missing.returncode != 0 and "no backup file" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr
    again = eve("restore", str(dump), "--force")
    assert again.returncode == 0, again.stderr
    assert Path(dump).exists()
