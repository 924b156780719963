"""The agent's environment: an allowlist, never the worker's own environment.

The worker holds DATABASE_URL, JWT_SECRET and whatever else its unit file sets; none of
that may reach an agent that runs arbitrary tools. The child gets PATH, HOME, LANG, TZ,
the provider variables a variant needs, Claude Code's own telemetry switches, the
EVE_* identity of the request, and the request's context flattened to EVE_CTX_*.
Context can never override anything in the allowlist (PATH, provider keys, ...) because
it only ever produces EVE_CTX_ names.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

BASE_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "TERM", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE")
PROVIDER_VARS = ("OPENROUTER_API_KEY", "Z_AI_API_KEY", "ZAI_API_KEY", "MINIMAX_API_KEY", "GH_TOKEN",
                 "GITHUB_TOKEN", "DEEPSEEK_API_KEY")
PROVIDER_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "OTEL_", "CC_MIRROR_")
PASSTHROUGH_EXTRA = ("DISABLE_TELEMETRY", "DISABLE_AUTOUPDATER", "DISABLE_ERROR_REPORTING")
# EVE_API_TOKEN/EVE_API_KEY of the worker's own environment are never passed on: each agent
# gets its own request token (eve.reqtokens), scoped to its request tree
NEVER = frozenset({"DATABASE_URL", "JWT_SECRET", "DB_PASSWORD", "PGPASSWORD", "EVE_TEST_DATABASE_URL",
                   "EVE_API_TOKEN", "EVE_API_KEY"})
_ENV_PART = re.compile(r"^[A-Za-z0-9_]+$")  # appended to EVE_CTX_, so a leading digit is fine
MAX_CTX_VALUE = 128 * 1024


def allowed_worker_env(worker_env: Mapping[str, str]) -> dict[str, str]:
    """The part of the worker's environment an agent may see."""
    out: dict[str, str] = {}
    for key, value in worker_env.items():
        if key in NEVER:
            continue
        if key in BASE_VARS or key in PROVIDER_VARS or key in PASSTHROUGH_EXTRA or key.startswith(PROVIDER_PREFIXES):
            out[key] = value
    return out


def _key_part(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").replace(".", "_").upper()


def flatten_context(context: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """{"repo": {"fullName": "a/b"}} → {"EVE_CTX_REPO_FULL_NAME": "a/b"}, plus skipped keys.

    Nested objects join their keys with `_`; lists and other non-scalars are JSON; keys
    that cannot form an environment variable name are skipped and reported.
    """
    out: dict[str, str] = {}
    skipped: list[dict[str, str]] = []

    def walk(prefix: str, value: Any, path: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                part = _key_part(str(k))
                if not _ENV_PART.match(part):
                    skipped.append({"key": f"{path}.{k}" if path else str(k), "reason": "not a valid env name"})
                    continue
                walk(f"{prefix}_{part}", v, f"{path}.{k}" if path else str(k))
            return
        if isinstance(value, str):
            text = value
        elif value is None or isinstance(value, bool):
            text = "" if value is None else ("true" if value else "false")
        elif isinstance(value, (int, float)):
            text = str(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        if "\x00" in text or len(text) > MAX_CTX_VALUE:
            skipped.append({"key": path, "reason": "value has NUL or is over 128 KiB"})
            return
        out[prefix] = text

    walk("EVE_CTX", dict(context), "")
    return out, skipped


def build_env(
    worker_env: Mapping[str, str],
    *,
    request_id: str,
    org_id: str,
    user_id: str,
    worker_type: str,
    home: str,
    context: Mapping[str, Any],
    api: tuple[str, str] | None = None,
    tenant: Any = None,
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The child's full environment, and the context keys that were skipped.

    `api` = (URL, request token): the agent's own `eve` talks to the API with them, and the
    directory of this install's `eve` goes first on PATH (the sandbox shows it read-only).
    """
    env = allowed_worker_env(worker_env)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = home
    ctx, skipped = flatten_context(context)
    env.update(ctx)
    env.update({"EVE_REQUEST_ID": request_id, "EVE_ORG_ID": org_id, "EVE_USER_ID": user_id,
                "EVE_WORKER_TYPE": worker_type})
    if api is not None:
        env["EVE_API_URL"], env["EVE_API_TOKEN"] = api
        bindir = os.path.dirname(sys.executable)
        if os.path.isfile(os.path.join(bindir, "eve")):
            env["PATH"] = f"{bindir}:{env['PATH']}"
    if tenant is not None:  # the org's secrets in, platform keys out if not allowed (eve.orgsecrets.TenantEnv)
        env = tenant.apply(env)
    return env, skipped
