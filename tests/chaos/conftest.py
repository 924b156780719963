"""The chaos suite runs the real Claude Code CLI against the fake Messages API, like e2e."""

from tests.e2e.conftest import claude_bin, fake_api, variant_bin  # noqa: F401 - fixtures shared with e2e
