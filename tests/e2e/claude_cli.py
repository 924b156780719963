"""The real Claude Code CLI for the end-to-end tests: installed once from npm, wrapped as a variant.

`ensure_claude_code()` installs the pinned `@anthropic-ai/claude-code` into a cache
directory outside the repo (reused across runs; a file lock guards concurrent installs).
The package ships a native binary through an optional per-platform npm dependency, so
the install needs nothing but the npm registry. `write_variant()` writes a
cc-mirror-style wrapper (like `mclaude`) that points Claude Code at the fake API.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.331"


def cache_root() -> Path:
    base = os.environ.get("EVE_TEST_CACHE") or Path.home() / ".cache" / "eve-horizon-tests"
    return Path(base)


def ensure_claude_code(cache_dir: Path | None = None) -> Path:
    """Path of the `claude` executable, installing it on first use."""
    root = (cache_dir or cache_root()) / f"claude-code-{CLAUDE_CODE_VERSION}"
    exe = root / "node_modules" / ".bin" / "claude"
    if exe.exists():
        return exe
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to install Claude Code for the end-to-end tests (install Node.js 20+)")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(root),
                 f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"],
                check=True, capture_output=True, text=True, timeout=600,
            )
    if not exe.exists():
        raise RuntimeError(f"npm installed Claude Code but {exe} is missing")
    return exe


WRAPPER = """#!/bin/sh
# {name}: a cc-mirror-style variant for the tests — Claude Code pointed at the fake API.
export ANTHROPIC_BASE_URL='{base_url}'
export ANTHROPIC_API_KEY='sk-ant-test-not-a-real-key'
export DISABLE_TELEMETRY=1
export DISABLE_AUTOUPDATER=1
export DISABLE_ERROR_REPORTING=1
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
# the variant's own isolated config, as cc-mirror keeps one per variant
export CLAUDE_CONFIG_DIR='{config_dir}'
exec '{claude}' "$@"
"""


def write_variant(bin_dir: Path, name: str, *, claude: Path, base_url: str, home: Path) -> Path:
    """Write an executable `bin_dir/name` wrapper; `home` holds the variant's config dir."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    config_dir = home / f".{name}"
    config_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(WRAPPER.format(name=name, base_url=base_url, config_dir=config_dir, claude=claude))
    path.chmod(0o755)
    return path
