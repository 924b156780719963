"""Least privilege in the database: one login role per kind of process.

Only the migrator (`eve up` itself, `eve db migrate`) holds the superuser or owner DSN.
Everything else gets a login role that can do its job and no more:

* `eve_api_login`    — member of `eve_api` only: no BYPASSRLS, RLS decides what exists;
  the few platform-wide reads go through definer functions (migration 0007).
* `eve_worker_login` — member of `service_role` (workers, the reaper): not superuser,
  no CREATE anywhere, no roles or databases.

Passwords are generated once per data dir and kept there 0600 (`<data dir>/secrets/`),
so a restart of `eve up` reuses them; `ensure_login_roles` (re)sets them every start,
which also repairs a role someone widened by hand.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eve.db import API_ROLE, SERVICE_ROLE
from eve.queries import parse, read_sql

API_LOGIN = "eve_api_login"
WORKER_LOGIN = "eve_worker_login"


@dataclass(frozen=True)
class LoginRole:
    name: str
    group: str
    password: str = ""


def secret_file(data_dir: Path, name: str) -> Path:
    return data_dir / "secrets" / f"{name}.password"


def load_or_create_password(data_dir: Path, name: str) -> str:
    """The password of role `name` for this data dir; generated on first use, 0600."""
    path = secret_file(data_dir, name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def platform_roles(data_dir: Path) -> tuple[LoginRole, LoginRole]:
    """(api, worker) login roles with their passwords from the data dir."""
    return (LoginRole(API_LOGIN, API_ROLE, load_or_create_password(data_dir, API_LOGIN)),
            LoginRole(WORKER_LOGIN, SERVICE_ROLE, load_or_create_password(data_dir, WORKER_LOGIN)))


def _sql() -> dict[str, str]:
    return parse(read_sql("roles.sql"))


def statement(name: str) -> str:
    """One named statement of sql/roles.sql (e.g. group_roles_ensure, for a restore)."""
    return _sql()[name]


async def ensure_login_roles(conn: psycopg.AsyncConnection[Any], roles: list[LoginRole]) -> None:
    """Create or reset each login role (needs a superuser or CREATEROLE connection)."""
    sql = _sql()
    for role in roles:
        async with conn.transaction():
            await conn.execute(sql["login_role_params"], {"role": role.name, "group": role.group,
                                                          "password": role.password})
            await conn.execute(sql["login_role_ensure"])
            await conn.execute(sql["login_role_clear"])
    await conn.execute(sql["public_schema_no_create"])


def dsn_for(dsn: str, role: LoginRole) -> str:
    """The same server and database as `dsn`, logged in as `role`."""
    params = conninfo_to_dict(dsn)
    params.pop("user", None)
    params.pop("password", None)
    if "host" not in params or "," in str(params.get("host")) or str(params["host"]).startswith("/"):
        return make_conninfo(**params, user=role.name, password=role.password)
    host, port, db = params.pop("host"), params.pop("port", "5432"), params.pop("dbname", "postgres")
    query = urlencode({k: str(v) for k, v in params.items()})
    return (f"postgresql://{quote(role.name, safe='')}:{quote(role.password, safe='')}@{host}:{port}/"
            f"{quote(str(db), safe='')}" + (f"?{query}" if query else ""))
