"""Per-org secrets (#19): encrypted at rest, write-only over the API, in that org's agents only.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under
the platform's secrets key, which only the API and the workers hold: `EVE_SECRETS_KEY`
(one or more Fernet keys, comma-separated, newest first) or `EVE_SECRETS_KEY_FILE` (one
key a line, newest first; `eve up` creates `<data dir>/secrets.key`). Decryption tries
every key (MultiFernet), so rotation is: put a new key first, keep the old ones, run
`eve admin secrets-rotate` (re-encrypts every value under the first key), then drop the
old keys. The database alone (a dump, a replica) reveals names and dates, never values;
the API role cannot even read the ciphertext column back.

Names are environment variable names an org may set for its agents: uppercase, and
never one the platform relies on (PATH, HOME, LD_*, EVE_*, ...). At run time the worker
loads the org's secrets (`load_for_org`), the executor adds them to the agent's
allowlisted environment (`TenantEnv.apply`), and a Masker takes their values out of
whatever the agent prints. `platform_keys` (eve.org_limits, default true: the behaviour
of existing single-org setups) decides whether the platform's own provider keys and
GH_TOKEN from the worker's environment reach this org's agents at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from eve import orgadmin
from eve.errors import ConfigError, NotFound, ValidationError
from eve.masking import MIN_LEN, Masker
from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
RESERVED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "TZ", "LANG",
                      "TERM", "IFS", "ENV", "BASH_ENV", "PS4", "NODE_OPTIONS", "CLAUDE_CONFIG_DIR",
                      "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"})
RESERVED_PREFIXES = ("LD_", "EVE_", "LC_", "DYLD_", "PYTHON", "BASH_FUNC", "GIT_CONFIG", "NPM_CONFIG")
MAX_VALUE = 64 * 1024
# what counts as a platform credential when an org may not use the platform's keys
_CREDENTIAL = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
_PLATFORM_EVE = frozenset({"EVE_API_URL", "EVE_API_TOKEN"})  # the request's own credential stays


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise ValidationError("secret name must be an environment variable name: uppercase letters, digits and "
                              "_ (starting with a letter, at most 64)")
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        raise ValidationError(f"{name} is reserved for the platform (PATH, HOME, LD_*, EVE_*, ...); choose another name")
    return name


def check_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("the secret value must be a string")
    if "\x00" in value:
        raise ValidationError("the secret value must not contain NUL characters")
    if len(value) < MIN_LEN:
        raise ValidationError(f"the secret value must be at least {MIN_LEN} characters (short values cannot be "
                              "masked in agents' output)")
    if len(value.encode()) > MAX_VALUE:
        raise ValidationError("the secret value must be at most 64 KiB")
    return value


# -- keys --------------------------------------------------------------------------------------

class Keyring:
    """The platform's secrets keys: encrypt with the first, decrypt with any."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys if k.strip()]
        except ValueError:
            raise ConfigError("a secrets key is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                              "`eve admin secrets-key`)") from None
        if not self._fernets:
            raise ConfigError("no secrets key configured")
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keyring | None:
        """EVE_SECRETS_KEY, or EVE_SECRETS_KEY_FILE; None when neither is set."""
        env = os.environ if env is None else env
        if env.get("EVE_SECRETS_KEY"):
            return cls(env["EVE_SECRETS_KEY"].split(","))
        if env.get("EVE_SECRETS_KEY_FILE"):
            path = Path(env["EVE_SECRETS_KEY_FILE"])
            try:
                return cls(path.read_text().split())
            except OSError as exc:
                raise ConfigError(f"cannot read EVE_SECRETS_KEY_FILE {path}: {exc.strerror}") from None
        return None

    def encrypt(self, value: str) -> bytes:
        return self._multi.encrypt(value.encode())

    def decrypt(self, token: bytes) -> str:
        return self._multi.decrypt(token).decode()

    def rotate(self, token: bytes) -> bytes:
        return self._multi.rotate(token)


def new_key() -> str:
    return Fernet.generate_key().decode()


def ensure_key_file(path: Path) -> Path:
    """`eve up`: a key file in the data dir, created once (0600)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key() + "\n")
    return path


class SecretsNotConfigured(ConfigError):
    code = "secrets_not_configured"
    http_status = 503


def key_env(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """`eve up`: unless a key is configured, point the child at `<data dir>/secrets.key` (created once).
    The workers hide the data dir from agents (--sandbox-hide), so agents never see the file."""
    if env.get("EVE_SECRETS_KEY") or env.get("EVE_SECRETS_KEY_FILE"):
        return env
    data_dir.mkdir(parents=True, exist_ok=True)
    return {**env, "EVE_SECRETS_KEY_FILE": str(ensure_key_file(data_dir / "secrets.key"))}


def require_keyring(keyring: Keyring | None) -> Keyring:
    """The key ring, or the error that says how to configure one (also webhooks' secrets)."""
    return _need(keyring)


def _need(keyring: Keyring | None) -> Keyring:
    if keyring is None:
        raise SecretsNotConfigured("per-org secrets are not configured on this API: set EVE_SECRETS_KEY or "
                          "EVE_SECRETS_KEY_FILE (the same key as the workers')")
    return keyring


# -- API side (inside the caller's eve_api transaction; eve.orgadmin checks the role) --------

async def put(conn: AsyncConn, keyring: Keyring | None, org_id: UUID, name: str, value: Any) -> dict[str, Any]:
    name, value = check_name(name), check_value(value)
    await orgadmin.require_admin(conn, org_id)
    token = _need(keyring).encrypt(value)
    row = await (await conn.execute(Q.secret_put, {"org_id": org_id, "name": name, "ciphertext": token})).fetchone()
    await orgadmin.audit(conn, org_id, "secret.set", name)
    return row


async def list_names(conn: AsyncConn, org_id: UUID) -> list[dict[str, Any]]:
    await orgadmin.require_admin(conn, org_id)
    return await (await conn.execute(Q.secrets_list, {"org_id": org_id})).fetchall()


async def delete(conn: AsyncConn, org_id: UUID, name: str) -> None:
    await orgadmin.require_admin(conn, org_id)
    row = await (await conn.execute(Q.secret_delete, {"org_id": org_id, "name": name})).fetchone()
    if row is None:
        raise NotFound(f"no secret named {name!r} in this organization")
    await orgadmin.audit(conn, org_id, "secret.delete", name)


# -- worker side ---------------------------------------------------------------------------------

@dataclass
class TenantEnv:
    """What an org adds to (or takes from) its agents' environment."""

    secrets: dict[str, str] = field(default_factory=dict)
    platform_keys: bool = True
    agent_limits: dict[str, Any] = field(default_factory=dict)  # the org's own agent limits (#28)

    @property
    def masker(self) -> Masker:
        return Masker(self.secrets)

    def apply(self, env: dict[str, str]) -> dict[str, str]:
        """The agent's environment with the org's secrets in, platform credentials out if not allowed."""
        out = dict(env)
        if not self.platform_keys:
            for key in list(out):
                if _CREDENTIAL.search(key) and key not in _PLATFORM_EVE:
                    del out[key]
        for key, value in self.secrets.items():
            if NAME.match(key) and key not in RESERVED and not key.startswith(RESERVED_PREFIXES):
                out[key] = value
        return out


async def load_for_org(conn: AsyncConn, keyring: Keyring | None, org_id: UUID) -> TenantEnv:
    """The org's secrets, decrypted (workers, service role). Raises ConfigError when the org
    has secrets and this worker has no key (or the wrong one): its agents would run without
    the credentials they were given."""
    row = await (await conn.execute(Q.secrets_for_org, {"org_id": org_id})).fetchone()
    env = TenantEnv(platform_keys=bool(row["platform_keys"]), agent_limits=dict(row.get("agent_limits") or {}))
    pairs = row["secrets"] or []
    if pairs and keyring is None:
        raise ConfigError("this organization has secrets but the worker has no secrets key "
                          "(set EVE_SECRETS_KEY or EVE_SECRETS_KEY_FILE like the API's)")
    for name, token in pairs:
        try:
            env.secrets[name] = keyring.decrypt(token.encode())  # type: ignore[union-attr]
        except InvalidToken:
            raise ConfigError(f"secret {name} cannot be decrypted with this worker's secrets key(s); "
                              "give the worker the key the API encrypted it with") from None
    return env


async def rotate_all(conn: AsyncConn, keyring: Keyring) -> int:
    """Re-encrypt every org's secrets under the first key (service role, one transaction)."""
    n = 0
    async with conn.transaction():
        for row in await (await conn.execute(Q.secrets_all_for_rotation)).fetchall():
            try:
                token = keyring.rotate(bytes(row["ciphertext"]))
            except InvalidToken:
                raise ConfigError(f"secret {row['name']} of org {row['org_id']} cannot be decrypted with any "
                                  "configured key; keep the old key in the list while rotating") from None
            await conn.execute(Q.secret_rewrap, {"org_id": row["org_id"], "name": row["name"], "ciphertext": token})
            n += 1
    return n
