"""`eve admin ...`: organisations, users, members and API keys, on the database directly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from eve.cli._common import DSN_HELP, require_dsn, run
from eve.cli.slack import admin_app as slack_admin_app

T = TypeVar("T")

app = typer.Typer(help="Bootstrap tenants and keys (talks to PostgreSQL directly, as the service role).",
                  no_args_is_help=True)
org_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
member_app = typer.Typer(help="Org membership.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(member_app, name="member")
app.add_typer(key_app, name="apikey")
app.add_typer(slack_admin_app, name="slack")

DsnOpt = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", help=DSN_HELP, show_envvar=False)]


def _with_conn(dsn: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    from eve.db import connect  # psycopg loads only when a command runs: `eve --help` stays fast

    async def go() -> T:
        conn = await connect(require_dsn(dsn))
        try:
            return await fn(conn)
        finally:
            await conn.close()

    return run(go())


@org_app.command("create")
def org_create(
    slug: Annotated[str, typer.Argument(help="Short unique id, e.g. acme-corp.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug).")] = None,
    database_url: DsnOpt = None,
) -> None:
    """Create an organisation."""
    from eve import admin as ops

    row = _with_conn(database_url, lambda c: ops.create_org(c, name or slug, slug))
    typer.echo(f"created org {row['slug']} ({row['id']})")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The user's email (their login name).")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    operator: Annotated[bool, typer.Option("--operator", help="Platform operator: sees every org.")] = False,
    database_url: DsnOpt = None,
) -> None:
    """Create a user."""
    from eve import admin as ops

    row = _with_conn(database_url, lambda c: ops.create_user(c, email, display_name=name, operator=operator))
    typer.echo(f"created user {row['email']} ({row['id']}){' [operator]' if operator else ''}")


@member_app.command("add")
def member_add(
    org: Annotated[str, typer.Argument(help="Org slug.")],
    email: Annotated[str, typer.Argument(help="User email.")],
    role: Annotated[str, typer.Option(help="owner, admin or member.")] = "member",
    database_url: DsnOpt = None,
) -> None:
    """Add a user to an org (or change their role)."""
    from eve import admin as ops

    _with_conn(database_url, lambda c: ops.add_member(c, org, email, role))
    typer.echo(f"{email} is now {role} of {org}")


@key_app.command("create")
def apikey_create(
    org: Annotated[str, typer.Option("--org", help="Org slug the key acts in.")],
    email: Annotated[str, typer.Option("--user", help="Email of the user the key acts as.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    database_url: DsnOpt = None,
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    from eve import admin as ops

    key = _with_conn(database_url, lambda c: ops.create_api_key(c, org, email, name))
    typer.echo(f"API key for {email} in {org} (shown once, store it now):")
    typer.echo(key.token)


@key_app.command("revoke")
def apikey_revoke(
    key: Annotated[str, typer.Argument(help="The key, or its prefix (the 8 characters after eve_).")],
    database_url: DsnOpt = None,
) -> None:
    """Revoke an API key: it can no longer mint tokens."""
    from eve import admin as ops

    row = _with_conn(database_url, lambda c: ops.revoke_api_key(c, key))
    typer.echo(f"revoked key {row['prefix']} at {row['revoked_at']:%Y-%m-%d %H:%M:%S %Z}")


@app.command("secrets-key")
def secrets_key() -> None:
    """Print a new secrets key (Fernet) for EVE_SECRETS_KEY: give the same value to the API and the workers.

    To rotate: set EVE_SECRETS_KEY=NEW,OLD on the API and every worker, run `eve admin secrets-rotate`,
    then drop OLD."""
    from eve.orgsecrets import new_key

    typer.echo(new_key())


@app.command("secrets-rotate")
def secrets_rotate(database_url: DsnOpt = None) -> None:
    """Re-encrypt every org's secrets under the first key of EVE_SECRETS_KEY (or EVE_SECRETS_KEY_FILE)."""
    from eve.cli._common import die
    from eve.db import set_service
    from eve.orgsecrets import Keyring, rotate_all

    keyring = Keyring.from_env()
    if keyring is None:
        die("set EVE_SECRETS_KEY=NEW,OLD (or EVE_SECRETS_KEY_FILE) first: the new key first, the old ones after", 2)

    async def go(conn: Any) -> int:
        async with conn.transaction():
            await set_service(conn)
            return await rotate_all(conn, keyring)

    n = _with_conn(database_url, go)
    typer.echo(f"re-encrypted {n} secret(s) under the first key; the old keys can now be removed")
