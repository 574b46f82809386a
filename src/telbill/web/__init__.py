"""The web dashboard: server-rendered pages (Jinja2) over the same services as the API.

`install(app)` adds the pages at ``/`` and the static assets at ``/static`` to the API
application (``api/app.py``), after the ``/v1`` routers.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from telbill.web.core import STATIC_DIR


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app` (pages at /, assets at /static)."""
    from telbill.web import pages_auth, pages_customer, pages_payments, pages_provider

    for module in (pages_auth, pages_customer, pages_provider, pages_payments):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


__all__ = ["install"]
