"""A ceiling on request bodies: a body larger than the limit is a 413 problem, refused before
it is read whole (uvicorn itself reads any size into memory).

A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted as
it arrives and refused when it crosses the limit. The limit is
``app.state.max_body_bytes``, from ``TELBILL_MAX_BODY_BYTES`` (default 16 MiB: a full batch
of 10 000 CDRs is about 3 MB).
"""

from __future__ import annotations

import os
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telbill.api.problems import problem_response
from telbill.errors import InvalidInput

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BODY_ENV = "TELBILL_MAX_BODY_BYTES"


def max_body_bytes_from_env(environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    raw = env.get(MAX_BODY_ENV) or str(DEFAULT_MAX_BODY_BYTES)
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{MAX_BODY_ENV} must be a positive whole number of bytes")
    return int(raw)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodySizeLimit:
    """ASGI middleware enforcing ``app.state.max_body_bytes`` on every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int = scope["app"].state.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = problem_response(
                Request(scope), status=413, code="payload_too_large", detail=_too_large(limit)
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException reaches the problem handlers (FastAPI re-raises it
                    # from body parsing), so the answer is the same 413 problem.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def install_body_limit(app: Any) -> None:
    app.state.max_body_bytes = max_body_bytes_from_env()
    app.add_middleware(BodySizeLimit)


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_BODY_ENV",
    "BodySizeLimit",
    "install_body_limit",
    "max_body_bytes_from_env",
]
