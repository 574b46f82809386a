"""RFC 9457 problem details: every error the API returns, in one shape.

A `TelbillError` becomes a problem whose `type` is ``https://telbill.dev/problems/<code>``
and whose status is the error's `status`; request validation errors and plain HTTP errors
(unknown route, wrong method) get the same shape, so a client needs one error parser.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from telbill.errors import TelbillError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://telbill.dev/problems/"

# Codes for errors that do not come from a TelbillError.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
}


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build an ``application/problem+json`` response for `request`."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    if extra:
        body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _telbill_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TelbillError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    extra = None
    retry_after_s = exc.details.get("retry_after_s")
    if exc.status == 429 and isinstance(retry_after_s, int):
        headers = {"Retry-After": str(retry_after_s)}
        extra = {"retry_after_s": retry_after_s}
    return problem_response(
        request, status=exc.status, code=exc.code, detail=exc.message, extra=extra,
        headers=headers,
    )  # fmt: skip


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _location(err.get("loc", ())), "message": str(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem_response(
        request, status=422, code="invalid_input", detail=detail, extra={"errors": errors}
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _number_out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # An id or count beyond what the database stores (e.g. 2**63) fails as the driver binds it
    # (SQLite: OverflowError; PostgreSQL: SQLSTATE 22003), inside a transaction that is rolled
    # back: the request was bad, not the server. Any other DataError stays a 500.
    if isinstance(exc, DataError) and getattr(exc.orig, "sqlstate", None) != "22003":
        return await _unexpected_error(request, exc)
    return problem_response(
        request, status=422, code="invalid_input", detail="a number in the request is out of range"
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request, status=500, code="internal_error", detail="internal server error"
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of `app` through RFC 9457 problem details."""
    app.add_exception_handler(TelbillError, _telbill_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _number_out_of_range)
    app.add_exception_handler(DataError, _number_out_of_range)
    app.add_exception_handler(Exception, _unexpected_error)


# For OpenAPI: the schema of a problem body. Extra members are allowed (RFC 9457 section 3.2):
# validation problems add `errors`, rate-limit problems add `retry_after_s`.
PROBLEM_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail", "instance", "code"],
    "properties": {
        "type": {"type": "string", "description": PROBLEM_BASE + "<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation problems: one entry per bad field",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_BODY_SCHEMA}},
    "description": "RFC 9457 problem details",
}
_RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds until the key's bucket holds a token again",
        "schema": {"type": "string", "pattern": r"^\d+$"},
    }
}
# Every error status a route may answer. Declaring 422 here also replaces FastAPI's default
# `HTTPValidationError` (application/json), which is not what the API sends.
PROBLEM_STATUSES = (400, 401, 402, 403, 404, 409, 413, 422, 429)
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        **PROBLEM_SCHEMA,
        "description": f"{_title(status)} (RFC 9457 problem details)",
        **({"headers": _RETRY_AFTER_HEADER} if status == 429 else {}),
    }
    for status in PROBLEM_STATUSES
}


__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_BODY_SCHEMA",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_RESPONSES",
    "PROBLEM_SCHEMA",
    "install_problem_handlers",
    "problem_response",
]
