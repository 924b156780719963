"""CLI configuration: `~/.config/eve/config.toml` (0600), overridden by env and flags.

Precedence for each setting: command-line flag > environment (EVE_API_URL, EVE_API_KEY)
> config file > default. The file is tiny TOML written by `eve config set`; it holds an
API key, so it is created with mode 0600 and rewritten atomically.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from eve.errors import ConfigError

DEFAULT_API_URL = "http://127.0.0.1:3000"
KEYS = {"api-url": "api_url", "api-key": "api_key"}


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "eve" / "config.toml"


def read_file(path: Path | None = None) -> dict[str, str]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or delete it") from None
    return {k: str(v) for k, v in data.items() if k in KEYS.values()}


def write_value(name: str, value: str, path: Path | None = None) -> Path:
    """Set one key (`api-url` or `api-key`) in the file, keeping the others."""
    if name not in KEYS:
        raise ConfigError(f"unknown setting {name!r}; settable: {', '.join(KEYS)}")
    if name == "api-url" and not value.startswith(("http://", "https://")):
        raise ConfigError(f"api-url must start with http:// or https://, got {value!r}")
    path = path or config_path()
    data = read_file(path)
    data[KEYS[name]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# eve CLI configuration (written by `eve config set`)\n")
        for key in sorted(data):
            f.write(f"{key} = {json.dumps(data[key])}\n")  # a JSON string is a valid TOML basic string
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True, slots=True)
class ClientConfig:
    api_url: str
    api_key: str | None
    api_url_source: str
    api_key_source: str


def resolve(api_url_flag: str | None = None) -> ClientConfig:
    file = read_file()
    if api_url_flag:
        url, url_src = api_url_flag, "--api-url"
    elif os.environ.get("EVE_API_URL"):
        url, url_src = os.environ["EVE_API_URL"], "EVE_API_URL"
    elif file.get("api_url"):
        url, url_src = file["api_url"], str(config_path())
    else:
        url, url_src = DEFAULT_API_URL, "default"
    if os.environ.get("EVE_API_KEY"):
        key, key_src = os.environ["EVE_API_KEY"], "EVE_API_KEY"
    elif file.get("api_key"):
        key, key_src = file["api_key"], str(config_path())
    else:
        key, key_src = None, "unset"
    return ClientConfig(api_url=url.rstrip("/"), api_key=key, api_url_source=url_src, api_key_source=key_src)


def mask(key: str | None) -> str:
    if not key:
        return "(unset)"
    parts = key.split("_")
    return f"eve_{parts[1]}_…" if len(parts) >= 3 and parts[0] == "eve" else key[:4] + "…"
