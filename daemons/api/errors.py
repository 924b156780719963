"""One error shape for every failure: `{"error": code, "message": text}` with the right status."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from psycopg_pool import PoolTimeout

from eve.errors import EveError

log = logging.getLogger("eve.api")


class ErrorBody(msgspec.Struct):
    error: str
    message: str


ERROR_RESPONSES = {
    400: ResponseSpec(ErrorBody, description="Bad input (invalid_input, invalid_worker_type)"),
    401: ResponseSpec(ErrorBody, description="Missing, invalid or expired token; wrong or revoked API key"),
    403: ResponseSpec(ErrorBody, description="Not allowed for this caller (worker logs: operators only)"),
    404: ResponseSpec(ErrorBody, description="Not found, or not visible to the caller"),
    402: ResponseSpec(ErrorBody, description="The org's monthly budget is spent (budget_exceeded)"),
    409: ResponseSpec(ErrorBody, description="Conflict with the request's state"),
    413: ResponseSpec(ErrorBody, description="Body over 2 MB or prompt over 1 MB"),
    422: ResponseSpec(ErrorBody, description="An Idempotency-Key used before with another body "
                                             "(idempotency_key_reused)"),
    429: ResponseSpec(ErrorBody, description="An org limit: pending requests, or requests per minute (Retry-After)"),
    500: ResponseSpec(ErrorBody, description="Unexpected error (logged with the id in the message)"),
    503: ResponseSpec(ErrorBody, description="Database unavailable"),
}

_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_input",
          429: "too_many_requests"}


def _body(status: int, code: str, message: str) -> Response[dict[str, str]]:
    return Response({"error": code, "message": message}, status_code=status)


def eve_error(_: Request[Any, Any, Any], exc: EveError) -> Response[dict[str, str]]:
    return Response({"error": exc.code, "message": exc.message}, status_code=exc.http_status,
                    headers=getattr(exc, "headers", None))  # Retry-After on a rate limit (eve.limits)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, str]]:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = [f"{d.get('key') or d.get('source') or 'body'}: {d.get('message')}" for d in details
             if isinstance(d, dict)]
    message = "; ".join(parts) or str(exc.detail)
    return _body(400, "invalid_input", message[:1000])


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    status = exc.status_code
    message = str(exc.detail)
    if status == 413:
        message = "request body is over the 2 MB limit"
    return _body(status, _CODES.get(status, "http_error"), message)


def database_down(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.warning("database unavailable: %s", exc)
    return _body(503, "database_unavailable", "the database is unavailable; retry shortly")


def data_error(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[dict[str, str]]:
    """A NUL character in a text value (a query parameter, say): PostgreSQL cannot store or
    compare it, and psycopg refuses it before sending. The caller's input, so a 400; any
    other data error is still unexpected."""
    if "NUL (0x00)" in str(exc):
        return _body(400, "invalid_input", "text values must not contain NUL (\\u0000) characters")
    return internal_error(request, exc)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return _body(500, "internal_error", f"unexpected error (error id {error_id}); it has been logged")


HANDLERS = {
    EveError: eve_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    psycopg.OperationalError: database_down,
    psycopg.InterfaceError: database_down,
    psycopg.DataError: data_error,
    PoolTimeout: database_down,
    Exception: internal_error,
}
