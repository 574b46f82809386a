"""The telbill REST API application (FastAPI, under ``/v1``, OpenAPI at ``/docs``).

Thin: each route parses the request, authorises the caller, calls one service and renders
the result. Each business area adds its endpoints in its own ``api/routes_<area>.py``
module exposing ``router``; `ROUTER_MODULES` lists them so areas grow without touching
each other's files.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from telbill import __version__
from telbill.adapters.db.engine import Database, database_url, make_engine
from telbill.adapters.db.readiness import not_ready_reason
from telbill.api.body_limit import install_body_limit
from telbill.api.docs import install_offline_docs
from telbill.api.problems import PROBLEM_RESPONSES, install_problem_handlers, problem_response
from telbill.api.ratelimit import limiter_from_env
from telbill.api.routes_sessions import lean_routes, realtime_router
from telbill.api.schemas import document_required_idempotency_key
from telbill.api.text_guard import install_text_guard
from telbill.services.clock import Clock, SystemClock

API_PREFIX = "/v1"

# Modules that add endpoints; each defines `router: fastapi.APIRouter`.
ROUTER_MODULES = (
    "telbill.api.routes_accounts",
    "telbill.api.routes_wallets",
    "telbill.api.routes_api_keys",
    "telbill.api.routes_reconcile",
    "telbill.api.routes_lifecycle",
    "telbill.api.routes_charging",
    "telbill.api.routes_rating",
    "telbill.api.routes_notifications",
    "telbill.api.routes_reports",
    "telbill.api.routes_invoices",
    "telbill.api.routes_tariffs",
    "telbill.api.routes_payments",
)


def create_app(database_url_: str | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Build the API on the database at `database_url_` (default: TELBILL_DATABASE_URL).

    The schema must already be migrated (`telbill init`). `clock` lets tests travel in time.
    """
    url = database_url_ or database_url()
    app = FastAPI(
        title="telbill",
        version=__version__,
        description=(
            "Telephony billing engine. Authenticate with `Authorization: Bearer <api key>`. "
            "Every POST needs an `Idempotency-Key` header. Amounts are decimal strings. "
            "Errors are RFC 9457 problem details (`application/problem+json`)."
        ),
        responses=PROBLEM_RESPONSES,
        docs_url=None,  # served offline below (api/docs.py)
        redoc_url=None,
    )
    app.state.db = Database(make_engine(url))
    app.state.clock = clock or SystemClock()
    app.state.rate_limiter = limiter_from_env()  # per API key, per worker process
    install_problem_handlers(app)
    install_text_guard(app)  # inside the body limit: it sees only bodies under the limit
    install_body_limit(app)
    document_required_idempotency_key(app)

    # Routes are matched in order, each request against every route before its own: the
    # health check and the real-time session calls (most of a switch's traffic) come first.
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:  # async: no thread-pool hop
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False, response_model=None)
    def readyz(request: Request) -> dict[str, str] | JSONResponse:
        """Ready to serve: the database answers and its schema is at the newest revision;
        a 503 problem otherwise (`/healthz` stays a liveness check, without the database)."""
        reason = not_ready_reason(app.state.db.engine)
        if reason is None:
            return {"status": "ready"}
        return problem_response(request, status=503, code="not_ready", detail=reason)

    app.router.routes.extend(lean_routes(API_PREFIX))  # a switch's requests, no dependencies
    app.include_router(realtime_router, prefix=API_PREFIX)
    for name in ROUTER_MODULES:
        router: APIRouter = importlib.import_module(name).router
        app.include_router(router, prefix=API_PREFIX)
    # The web dashboard at / (after the API, so /v1 stays the API's).
    from telbill.web import install as install_dashboard

    install_dashboard(app)
    install_offline_docs(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (``telbill serve``): database from the environment."""
    return create_app()


__all__ = ["API_PREFIX", "ROUTER_MODULES", "app_from_env", "create_app"]
