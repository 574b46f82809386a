"""Log-in and log-out of the dashboard, and the home redirect.

Log-in takes an API key (the same keys and roles as the API; a ``switch`` key is refused)
or the email and password of a dashboard user (`telbill admin user add`).
The log-in form itself is protected against cross-site posting by a double-submit token: a
random value in a short-lived cookie that the form must repeat.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from telbill.errors import PermissionDenied, Unauthenticated
from telbill.services.auth import end_web_session, start_password_session, start_web_session
from telbill.web.core import (
    LOGIN_CSRF_COOKIE,
    ClockDep,
    CsrfRejected,
    CsrfSessionDep,
    DbDep,
    PageRoute,
    get_session,
    home_path,
    render,
    secure_cookies,
    session_cookie_name,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no //evil.example)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    try:
        session = get_session(request)
    except Unauthenticated:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_path(session.principal), status_code=303)


def _login_form(
    request: Request, *, error: str | None = None, next_path: str | None = None, status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html",
        {"login_token": token, "error": error, "next": next_path or ""}, status_code=status,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="lax",
        secure=secure_cookies(request), path="/login",
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None
) -> HTMLResponse:
    return _login_form(request, next_path=_safe_next(next_path))


@router.post("/login")
def login(
    request: Request,
    db: DbDep,
    clock: ClockDep,
    api_key: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
        raise CsrfRejected("the log-in form expired or came from another site; reload it")
    try:
        if email.strip():
            token, session = start_password_session(db, email, password, clock=clock)
        else:
            token, session = start_web_session(db, api_key, clock=clock)
    except (Unauthenticated, PermissionDenied) as exc:
        message = exc.message
        if isinstance(exc, Unauthenticated):
            message = "Wrong email or password." if email.strip() else "That key is not valid."
        return _login_form(request, error=message, next_path=_safe_next(next_path), status=401)
    target = _safe_next(next_path) or home_path(session.principal)
    response = RedirectResponse(target, status_code=303)
    # Host-only (no Domain), Path=/ and, over https, Secure with the `__Host-` prefix.
    response.set_cookie(
        session_cookie_name(request), token, httponly=True, samesite="lax",
        secure=secure_cookies(request), path="/",
        max_age=int((session.expires_at - clock.now()).total_seconds()),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: DbDep, session: CsrfSessionDep) -> Response:
    name = session_cookie_name(request)
    end_web_session(db, request.cookies.get(name, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(name, path="/", secure=secure_cookies(request), httponly=True)
    return response


__all__ = ["router"]
