"""Fixtures for the end-to-end tests: the real Claude Code CLI and the fake Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.claude_cli import ensure_claude_code, write_variant
from tests.e2e.fake_anthropic import FakeAnthropic


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return ensure_claude_code()


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def variant_bin(tmp_path_factory: pytest.TempPathFactory, claude_bin: Path, fake_api: FakeAnthropic) -> Path:
    """A directory holding an `mclaude` wrapper (put it first on the worker's PATH)."""
    root = tmp_path_factory.mktemp("variant")
    write_variant(root / "bin", "mclaude", claude=claude_bin, base_url=fake_api.url, home=root / "home")
    return root / "bin"
