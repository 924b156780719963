"""`eve admin ...` and `eve db ...` as an operator runs them: subprocesses against a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg

from eve import apikeys


def eve(db_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if db_url:
        env["DATABASE_URL"] = db_url
    return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_bootstrap_a_tenant_and_a_key(db_url):
    assert eve(db_url, "admin", "org", "create", "acme-corp", "--name", "Acme Corp").returncode == 0
    r = eve(db_url, "admin", "user", "create", "ops@acme.test", "--operator")
    assert r.returncode == 0 and "[operator]" in r.stdout
    r = eve(db_url, "admin", "member", "add", "acme-corp", "ops@acme.test", "--role", "owner")
    assert r.returncode == 0, r.stderr
    r = eve(db_url, "admin", "apikey", "create", "--org", "acme-corp", "--user", "ops@acme.test", "--name", "ci")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    parsed = apikeys.parse(key)
    assert parsed is not None, key
    prefix, secret = parsed
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT secret_hash, name FROM eve.api_keys WHERE prefix = %s", (prefix,)).fetchone()
        member = conn.execute("SELECT role FROM eve.org_members").fetchone()
    assert stored[1] == "ci" and secret not in stored[0] and apikeys.verify(secret, stored[0])
    assert member == ("owner",)

    r = eve(db_url, "admin", "apikey", "revoke", prefix)
    assert r.returncode == 0 and f"revoked key {prefix}" in r.stdout
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT revoked FROM eve.lookup_api_key(%s)", (prefix,)).fetchone()
    assert row == (True,)


def test_mistakes_are_one_line_errors(db_url):
    assert eve(db_url, "admin", "org", "create", "dup").returncode == 0
    cases = [
        (("admin", "org", "create", "dup"), "already exists"),
        (("admin", "org", "create", "Bad Slug!"), "must be lowercase letters"),
        (("admin", "user", "create", "not-an-email"), "is not an email address"),
        (("admin", "member", "add", "nope", "x@y.z"), "no organization with slug 'nope'"),
        (("admin", "apikey", "revoke", "zzzzzzzz"), "no API key with prefix"),
        (("admin", "member", "add", "dup", "x@y.z", "--role", "king"), "role must be owner, admin or member"),
    ]
    for args, text in cases:
        r = eve(db_url, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and text in r.stderr, (args, r.stderr)


def test_key_for_a_non_member_is_refused(db_url):
    eve(db_url, "admin", "org", "create", "solo")
    eve(db_url, "admin", "user", "create", "outsider@x.test")
    r = eve(db_url, "admin", "apikey", "create", "--org", "solo", "--user", "outsider@x.test")
    assert r.returncode == 1 and "is not a member of solo" in r.stderr


def test_missing_database_url_is_a_usage_error():
    r = eve(None, "db", "migrate")
    assert r.returncode == 2 and "DATABASE_URL" in r.stderr and "Traceback" not in r.stderr


def test_db_status_and_prune(db_url):
    r = eve(db_url, "db", "status")
    assert r.returncode == 0 and re.search(r"applied 0001_initial", r.stdout) and "up to date" in r.stdout
    r = eve(db_url, "db", "prune", "--older-than", "30d")
    assert r.returncode == 0 and "pruned 0 finished requests" in r.stdout
    r = eve(db_url, "db", "prune", "--older-than", "soon")
    assert r.returncode == 2 and "not a duration" in r.stderr
