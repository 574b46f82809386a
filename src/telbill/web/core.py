"""What every dashboard page shares: templates, the logged-in session, CSRF, error pages.

A page is a plain FastAPI route on a `PageRoute` router: a `TelbillError` raised while
serving it (an account outside the caller's scope, a bad amount...) becomes an HTML page
with the error's status instead of the API's problem JSON; not being logged in redirects
to the log-in page.

Sessions: the cookie holds a random token; the row (`services.auth.start_web_session`)
holds the key, the expiry and the CSRF token. Every POST must carry that CSRF token, as the
form field ``csrf_token`` or the header ``X-CSRF-Token``, or it is refused with a 403 page.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from telbill.adapters.db.engine import Database
from telbill.errors import PermissionDenied, TelbillError, Unauthenticated
from telbill.services import accounts
from telbill.services.auth import (
    Principal,
    Role,
    WebSession,
    csrf_matches,
    load_web_session,
)
from telbill.services.clock import Clock

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
SESSION_COOKIE = "telbill_session"
# The name over https: a browser accepts a `__Host-` cookie only with Secure, Path=/ and no
# Domain, so no sibling subdomain (or plain-http page) can set or shadow the session cookie.
HOST_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
LOGIN_CSRF_COOKIE = "telbill_login_csrf"
# TELBILL_SECURE_COOKIES: "auto" (Secure when the request came over https), "1" or "0".
SECURE_COOKIES_ENV = "TELBILL_SECURE_COOKIES"


class CsrfRejected(PermissionDenied):
    code = "csrf_rejected"


def format_money(value: Decimal | int | None) -> str:
    """Exact amount, grouped, at least two decimals and no trailing zeros beyond them."""
    if value is None:
        return ""
    amount = Decimal(value)
    text = f"{amount.normalize():f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(2, "0")
    sign = "-" if whole.startswith("-") else ""
    whole = whole.lstrip("-")
    return f"{sign}{int(whole):,}.{fraction}"


def format_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def format_seconds(value: int) -> str:
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}:{seconds:02d}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = format_money
    env.filters["time"] = format_time
    env.filters["mmss"] = format_seconds
    return env


templates = _environment()


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def secure_cookies(request: Request) -> bool:
    setting = os.environ.get(SECURE_COOKIES_ENV, "auto").strip().lower()
    if setting in {"1", "true", "yes"}:
        return True
    if setting in {"0", "false", "no"}:
        return False
    return request.url.scheme == "https"


def session_cookie_name(request: Request) -> str:
    """`HOST_SESSION_COOKIE` whenever cookies are Secure (https, or forced by
    `SECURE_COOKIES_ENV`); the bare name only for a plain-http development server, where a
    browser would drop a `__Host-` cookie. Only this one name is read: over https a cookie
    without the prefix (planted by a subdomain) is ignored."""
    return HOST_SESSION_COOKIE if secure_cookies(request) else SESSION_COOKIE


def get_session(request: Request) -> WebSession:
    """The logged-in session of the request's cookie (Unauthenticated otherwise)."""
    cached = getattr(request.state, "web_session", None)
    if isinstance(cached, WebSession):
        return cached
    token = request.cookies.get(session_cookie_name(request), "")
    session = load_web_session(get_db(request), token, clock=get_clock(request))
    request.state.web_session = session
    return session


async def require_csrf(request: Request) -> WebSession:
    """The session of a POST that carries its CSRF token; 403 page otherwise."""
    session = get_session(request)
    presented = request.headers.get("X-CSRF-Token")
    if presented is None:
        form = await request.form()
        field = form.get("csrf_token")
        presented = field if isinstance(field, str) else None
    if not csrf_matches(session, presented):
        raise CsrfRejected("the form is missing its security token or it has expired; reload")
    return session


SessionDep = Annotated[WebSession, Depends(get_session)]
CsrfSessionDep = Annotated[WebSession, Depends(require_csrf)]
DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def form_key(session: WebSession, presented: str | None) -> str:
    """The idempotency key of a form post: the form's one-time value, scoped to the caller.

    Each rendered form carries a fresh random ``idem`` value, so a double click or a browser
    resend of the same form changes nothing twice.
    """
    value = (presented or "").strip()[:80] or secrets.token_urlsafe(16)
    return f"web:{session.principal.account_id}:{value}"


def home_path(principal: Principal) -> str:
    if principal.role is Role.PROVIDER_ADMIN:
        return f"/provider/{principal.account_id}/accounts"
    return f"/accounts/{principal.account_id}/balance"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page; the base layout gets the session (navigation, CSRF token)."""
    session = getattr(request.state, "web_session", None)
    values: dict[str, Any] = {
        "request": request,
        "session": session,
        "principal": session.principal if session else None,
        "csrf_token": session.csrf_token if session else "",
        "new_idem": lambda: secrets.token_urlsafe(16),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "is_provider": bool(session and session.principal.role is Role.PROVIDER_ADMIN),
    }
    values.update(context or {})
    html = templates.get_template(name).render(values)
    return HTMLResponse(html, status_code=status_code)


def account_context(db: Database, account_id: int) -> dict[str, Any]:
    """The account a customer page is about (the caller's scope was checked before)."""
    return {"account": accounts.get_account(db, account_id)}


NOTICES = {
    "topup": "Payment recorded: the receipt is below.",
    "thresholds": "Low-balance warnings saved.",
    "bought": "Number bought.",
    "released": "Number released.",
    "campaign": "Campaign updated.",
    "read": "Notifications marked read.",
    "imported": "Tariff imported.",
    "account": "Account created.",
    "package": "Package bought: its units are in the balance.",
}


def see_other(path: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        path += ("&" if "?" in path else "?") + f"notice={notice}"
    return RedirectResponse(path, status_code=303)


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return render(
        request, "error.html", {"title": title, "detail": detail, "status": status},
        status_code=status,
    )  # fmt: skip


_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict",
           422: "Check the form"}  # fmt: skip


# Every page: only this site's own assets and forms, never framed (clickjacking), no MIME
# sniffing, no full URLs leaked to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageRoute(APIRoute):
    """A dashboard route: errors become HTML pages; no session redirects to the log-in;
    every response carries `SECURITY_HEADERS`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await original(request)
            except Unauthenticated:
                if request.method == "GET":
                    target = quote(request.url.path, safe="/")
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return _error_page(request, 401, "Not logged in", "Log in again.")
            except TelbillError as exc:
                title = _TITLES.get(exc.status, "Error")
                return _error_page(request, exc.status, title, exc.message)
            except RequestValidationError as exc:
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                    for e in exc.errors()
                )
                return _error_page(request, 422, _TITLES[422], detail)

        async def handler(request: Request) -> Response:
            response = await page(request)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handler


__all__ = [
    "ClockDep",
    "CsrfRejected",
    "CsrfSessionDep",
    "DbDep",
    "PageRoute",
    "SessionDep",
    "account_context",
    "form_key",
    "format_money",
    "get_session",
    "home_path",
    "render",
    "see_other",
    "secure_cookies",
    "session_cookie_name",
    "templates",
]
