"""The one exception tree of telbill.

Every error a user can cause is a `TelbillError` subclass with a stable machine `code`
(used as the RFC 9457 problem `type` suffix by the API and as the CLI's one-line reason)
and an HTTP `status`. Adapters translate driver errors into these at the boundary.
"""

from __future__ import annotations

from typing import Any


class TelbillError(Exception):
    """Root of every error telbill raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(TelbillError):
    """Malformed or out-of-range input (amount, currency, number, file row...)."""

    code = "invalid_input"
    status = 422


class MissingIdempotencyKey(InvalidInput):
    """A mutating API request came without its Idempotency-Key header."""

    code = "idempotency_key_missing"
    status = 400


class NotFound(TelbillError):
    code = "not_found"
    status = 404


class PermissionDenied(TelbillError):
    code = "forbidden"
    status = 403


class Unauthenticated(TelbillError):
    code = "unauthenticated"
    status = 401


class Conflict(TelbillError):
    code = "conflict"
    status = 409


class IdempotencyConflict(Conflict):
    """The same idempotency key was reused with a different request."""

    code = "idempotency_key_reused"


class InsufficientBalance(TelbillError):
    code = "insufficient_balance"
    status = 402


class AccountSuspended(TelbillError):
    code = "suspended"
    status = 403


class NoRate(TelbillError):
    """No tariff row matches the destination/service/direction at that time."""

    code = "no_rate"
    status = 422


class CallClassNotAllowed(TelbillError):
    code = "call_class_not_allowed"
    status = 403
