"""Pure pieces of the core: the named-query loader, API keys, input validation."""

from __future__ import annotations

import pytest

from eve import apikeys, queries
from eve.errors import PayloadTooLarge, ValidationError
from eve.queue import parse_uuid, validate_config, validate_context, validate_prompt
from eve.settings import QueueSettings


def test_parse_named_blocks():
    text = "-- header comment\n-- name: one\nSELECT 1;\n\n-- name: two_b\nSELECT\n  2;\n"
    assert queries.parse(text) == {"one": "SELECT 1;", "two_b": "SELECT\n  2;"}


def test_duplicate_or_empty_names_are_bugs():
    with pytest.raises(ValueError, match="defined twice"):
        queries.parse("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="is empty"):
        queries.parse("-- name: a\n\n-- name: b\nSELECT 1;\n")


def test_unknown_query_name_says_so():
    with pytest.raises(AttributeError, match="no query named 'nope'"):
        _ = queries.Q.nope
    assert "SKIP LOCKED" in queries.Q.claim_batch


def test_no_query_builds_sql_from_python_values():
    for name, sql in queries.load().items():
        assert "{" not in sql.replace("'{}'", ""), f"{name} looks like a format string"


def test_api_key_round_trip():
    key = apikeys.generate()
    token = key.token
    assert token.startswith("eve_") and len(key.prefix) == 8
    assert apikeys.parse(token) == (key.prefix, key.secret)
    assert apikeys.verify(key.secret, key.secret_hash)
    assert not apikeys.verify(key.secret + "x", key.secret_hash)
    assert key.secret not in key.secret_hash
    assert apikeys.prefix_of(token) == key.prefix and apikeys.prefix_of(key.prefix) == key.prefix


@pytest.mark.parametrize("bad", ["", "eve_", "eve_short_x", "xyz_abcdefgh_" + "a" * 43, None, 42])
def test_malformed_keys_do_not_parse(bad):
    assert apikeys.parse(bad) is None  # type: ignore[arg-type]


def test_generated_keys_are_unique():
    assert len({apikeys.generate().token for _ in range(200)}) == 200


def test_prompt_validation():
    s = QueueSettings()
    assert validate_prompt("hi", s) == "hi"
    with pytest.raises(ValidationError):
        validate_prompt(3, s)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="NUL"):
        validate_prompt("a\x00b", s)
    # the limit counts bytes, not characters
    with pytest.raises(PayloadTooLarge):
        validate_prompt("é" * 500_001, s)
    assert validate_prompt("é" * 500_000, s)


def test_context_and_config_validation():
    assert validate_context(None) == {}
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        validate_context({"x": object()})
    assert validate_config({"variant": "zai", "timeout_ms": 60_000, "model": None}) == {
        "variant": "zai", "timeout_ms": 60_000}
    for bad, text in [({"timeout_ms": True}, "must be int"), ({"timeout_ms": 10}, "between 1000"),
                      ({"variant": "a b"}, "not a valid variant"), ({"allowed_tools": [""]}, "list of tool names"),
                      ([], "must be a JSON object")]:
        with pytest.raises(ValidationError, match=text):
            validate_config(bad)


def test_parse_uuid_names_the_field():
    with pytest.raises(ValidationError, match="org id must be a UUID"):
        parse_uuid("nope", "org id")
