"""Which executable runs a request: the variant (mclaude, zai, ...) resolved to a path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from eve.errors import EveError

DEFAULT_VARIANT = "mclaude"


class VariantNotFound(EveError):
    code = "variant_not_found"


def variant_name(request_config: Mapping[str, Any], worker_type_config: Mapping[str, Any]) -> str:
    return str(request_config.get("variant") or worker_type_config.get("variant") or DEFAULT_VARIANT)


def resolve(name: str, worker_type_config: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """EVE_VARIANT_<NAME> (a path), then worker_types.config.variants[name], then PATH."""
    env_key = "EVE_VARIANT_" + name.upper().replace("-", "_").replace(".", "_")
    candidates = [env.get(env_key), (worker_type_config.get("variants") or {}).get(name)]
    for candidate in candidates:
        if candidate:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
            raise VariantNotFound(f"variant {name!r} points at {candidate!r}, which is not an executable file")
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    raise VariantNotFound(
        f"variant {name!r} not found on PATH; install it with `npx cc-mirror quick --provider mirror --name {name}` "
        f"(or another cc-mirror provider), or set {env_key} to the wrapper's path"
    )
