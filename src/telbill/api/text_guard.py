"""No NUL and no lone surrogate anywhere in a request: a 422 problem naming the field.

PostgreSQL cannot store a NUL character, and a lone surrogate (``"\\ud800"``) has no UTF-8
form: either fails deep inside a service (or when the answer is encoded) as a 500. The rule
(`telbill.domain.inputs.text_problem`) holds for every route, including routes added later,
so it is enforced here, once, before a request reaches its route:

* JSON bodies: both characters can only arrive as ``\\u`` escapes (a raw control character
  or an unpaired surrogate's bytes are not valid JSON or UTF-8 and are refused by the
  parser), so the body's bytes are searched for those escapes as they arrive; only when one
  is found is the body parsed here to name the field (keys too) or to find it was harmless
  (an escaped backslash, a surrogate pair).
* Query strings and form bodies (``application/x-www-form-urlencoded``, the dashboard's):
  ``%00`` (percent-decoding never yields a surrogate).

Items of a batch whose bad records are refused one by one (`PER_ITEM_FIELDS`: the CDRs of
``POST /v1/cdrs``) are left to the route, which quarantines each bad one with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telbill.api.problems import problem_response
from telbill.domain.inputs import printable, text_problem

_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_FORM_NUL = re.compile(rb"%00")  # a form body (the dashboard's) is percent-encoded
_TAIL = 5  # bytes of a chunk kept to find an escape cut in two by the next chunk
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Path -> field of a list whose items' values the route checks one by one.
PER_ITEM_FIELDS = {"/v1/cdrs": "cdrs"}


def bad_text(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(field, problem) for each string (or key) of a JSON value that is not acceptable text;
    the field is the dotted path (``cdrs.3.id``)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield ".".join(path) or "body", problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key)
            if problem is not None:
                yield ".".join((*path, printable(key))), f"(a key) {problem}"
            yield from bad_text(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from bad_text(item, (*path, str(index)))


def _skip_items(document: Any, field: str | None) -> Any:
    """`document` without the values of its per-item list (their keys stay checked)."""
    if field is None or not isinstance(document, dict):
        return document
    items = document.get(field)
    if not isinstance(items, list):
        return document
    keys_only = [{key: "" for key in item} if isinstance(item, dict) else item for item in items]
    return {**document, field: keys_only}


def _first_problem(body: bytes, per_item: str | None) -> tuple[str, str] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's parser answers for it
    return next(bad_text(_skip_items(document, per_item)), None)


def _query_problem(query: bytes) -> tuple[str, str] | None:
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        for field, text in ((name, name), (name, value)):
            problem = text_problem(text)
            if problem is not None:
                return printable(field), problem
    return None


class TextGuard:
    """ASGI middleware: refuse NUL and lone surrogates in JSON and form bodies and in query
    strings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            found = _query_problem(query)
            if found is not None:
                field, problem = found
                response = problem_response(
                    Request(scope), status=422, code="invalid_input",
                    detail=f"{field}: {problem}",
                    extra={"errors": [{"field": field, "message": problem}]},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        suspect = False
        per_item = PER_ITEM_FIELDS.get(scope["path"])
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        form = content_type.startswith(b"application/x-www-form-urlencoded")
        pattern = _FORM_NUL if form else _ESCAPE

        async def checked() -> Message:
            nonlocal suspect
            message = await receive()
            if message["type"] != "http.request":
                return message
            body: bytes = message.get("body", b"")
            tail = chunks[-1][-_TAIL:] if chunks else b""
            chunks.append(body)
            if not suspect and pattern.search(tail + body) is not None:
                suspect = True
            if suspect and not message.get("more_body", False):
                whole = b"".join(chunks)
                found = _query_problem(whole) if form else _first_problem(whole, per_item)
                if found is not None:
                    # Raised while the route reads its body: FastAPI lets an HTTPException
                    # through to the problem handlers (api/problems.py).
                    raise HTTPException(422, f"{found[0]}: {found[1]}")
            return message

        await self.app(scope, checked, send)


def install_text_guard(app: Any) -> None:
    app.add_middleware(TextGuard)


__all__ = ["PER_ITEM_FIELDS", "TextGuard", "bad_text", "install_text_guard"]
