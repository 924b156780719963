"""One error family for the whole platform.

Every error a person can cause or act on is an `EveError` subclass with a stable
machine-readable `code` and a message that says what to do. The edges map them: the
API to HTTP statuses (`http_status`), the CLI to exit codes. Nothing in between
swallows them.
"""

from __future__ import annotations


class EveError(Exception):
    """Base of every expected error; `code` is stable, `message` is for people."""

    code = "eve_error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class ValidationError(EveError):
    """Input that can never succeed as given (empty prompt, bad UUID, ...)."""

    code = "invalid_input"
    http_status = 400


class InvalidWorkerType(ValidationError):
    code = "invalid_worker_type"

    def __init__(self, name: str) -> None:
        super().__init__(f"Invalid worker type: {name}")
        self.worker_type = name


class PayloadTooLarge(ValidationError):
    code = "payload_too_large"
    http_status = 413


class NotFound(EveError):
    code = "not_found"
    http_status = 404


class Conflict(EveError):
    """The request is in a state where the operation makes no sense (e.g. cancel a finished one)."""

    code = "conflict"
    http_status = 409


class ResultConflict(Conflict):
    """A second attempt to write a result, or a result from a worker that lost its lease."""

    code = "result_conflict"


class AuthError(EveError):
    code = "unauthorized"
    http_status = 401


class Forbidden(EveError):
    code = "forbidden"
    http_status = 403


class DatabaseUnavailable(EveError):
    code = "database_unavailable"
    http_status = 503


class MigrationError(EveError):
    code = "migration_error"
    http_status = 500


class EmbeddedPostgresError(EveError):
    code = "embedded_postgres_error"
    http_status = 500


class ConfigError(EveError):
    code = "config_error"
    http_status = 500
