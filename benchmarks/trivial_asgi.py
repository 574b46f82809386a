"""The smallest ASGI app a switch could talk to: the same-run baseline of
`benchmarks/sessions.py` (served by the same uvicorn, driven by the same clients).

It reads each request's body and answers a fixed authorisation-shaped JSON (any path), so an
authorize+end pair through it costs what HTTP, uvicorn and the client cost, and nothing else.
"""

from __future__ import annotations

from typing import Any

_BODY = (
    b'{"allowed":true,"reason":null,"message":"allowed","session_id":1,"max_seconds":3600,'
    b'"held":"0","held_seconds":0,"currency":"USD"}'
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: accept start-up and shut-down
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
