"""The standing hostile-agent suite: one test per way out that an agent has tried.

Its decoys and secrets live where the sandbox *shows* the tree, never under /tmp (bwrap
gives every agent an empty /tmp of its own, so a secret planted there proves nothing).
The agents here are small scripted programs run as the variant — hostile code that does
exactly one thing per turn, in the real sandbox of a real worker, fast.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's uid drop and uid mode need a root worker "
                                                         "(run the suite as root, as CI does)")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory outside /tmp that every uid may walk through (uid mode resolves paths as the
    agent's uid), removed afterwards even when the test fails."""
    base = Path("/opt") / f"eve-security-{secrets.token_hex(4)}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_decoy(parent: Path) -> tuple[Path, str]:
    """A root-only tree (0700 dirs, 0600 files) with a secret in it: what an agent must never
    read, change, chmod or chown through the worker."""
    decoy = parent / "decoy"
    (decoy / "inner").mkdir(parents=True)
    secret = "DECOY-" + secrets.token_hex(12)
    (decoy / "secret.txt").write_text(secret)
    (decoy / "inner" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for d in (decoy, decoy / "inner"):
        d.chmod(0o700)
    for f in (decoy / "secret.txt", decoy / "inner" / "passwd"):
        f.chmod(0o600)
    return decoy, secret


def tree_digest(root: Path) -> str:
    """Names, types, modes, owners and contents of everything under `root` (links not followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]):
            st = os.lstat(name)
            h.update(f"{name}|{stat.filemode(st.st_mode)}|{st.st_uid}|{st.st_gid}\n".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(Path(name).read_bytes())
    return h.hexdigest()


def write_agent(bin_dir: Path, name: str, script: str, *, config_dir: Path) -> Path:
    """A cc-mirror-style wrapper (it names its config dir, as mclaude's does) exec'ing `script`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    body = bin_dir / f"{name}.py"
    body.write_text(script)
    body.chmod(0o755)
    wrapper = bin_dir / name
    wrapper.write_text(f"#!/bin/sh\nexport CLAUDE_CONFIG_DIR='{config_dir}'\nexec /usr/bin/python3 '{body}' \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


# What every scripted agent shares: stream-json out, the request's API with its own token.
AGENT_LIB = r'''
import json, os, sys, urllib.request

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

def finish(result, session_id):
    emit({"type": "system", "subtype": "init", "session_id": session_id, "model": "hostile", "tools": []})
    emit({"type": "result", "subtype": "success", "is_error": False, "result": json.dumps(result),
          "session_id": session_id, "usage": {"input_tokens": 1, "output_tokens": 1}, "total_cost_usd": 0.0})

def api(method, path, body=None):
    req = urllib.request.Request(os.environ["EVE_API_URL"].rstrip("/") + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + os.environ["EVE_API_TOKEN"],
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read() or b"null")

def can_read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode(errors="replace")
    except OSError as exc:
        return None
'''
