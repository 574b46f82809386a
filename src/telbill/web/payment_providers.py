"""Payment providers the dashboard's top-up form offers (pluggable).

A provider turns a payment received into a recorded one. Every provider ends in
`services.payments.record_top_up` (receipt, VAT, resumed account, re-armed thresholds). The
form that uses them ("Record payment") is a provider admin's: money enters a wallet only
from a trusted source (docs/security.md). The built-in `ManualBankTransfer` records a
transfer that has arrived, with its bank reference on the receipt. A customer's own "I have
paid" is a top-up request instead (`services.top_up_requests`), and a card payment is
booked by the payment provider's signed callback (`services.card_payments`).

Register another provider with `register(provider)`; `TELBILL_PAYMENT_PROVIDERS` (comma
separated names) limits which ones the form shows (default: all registered).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from telbill.adapters.db.engine import Database
from telbill.errors import InvalidInput
from telbill.services import payments
from telbill.services.clock import Clock
from telbill.services.ledger_views import Receipt


class PaymentProvider(Protocol):
    name: str
    label: str
    reference_label: str

    def top_up(
        self, db: Database, account_id: int, amount: Decimal | str, *, reference: str,
        idempotency_key: str, clock: Clock,
    ) -> Receipt: ...  # fmt: skip


@dataclass(frozen=True)
class ManualBankTransfer:
    """A bank transfer that has arrived: recorded by the provider with its reference."""

    name: str = "bank_transfer"
    label: str = "Bank transfer (manual)"
    reference_label: str = "Bank transfer reference"

    def top_up(
        self, db: Database, account_id: int, amount: Decimal | str, *, reference: str,
        idempotency_key: str, clock: Clock,
    ) -> Receipt:  # fmt: skip
        reference = reference.strip()
        if not reference or len(reference) > 150:
            raise InvalidInput("a bank transfer needs its reference (1 to 150 characters)")
        return payments.record_top_up(
            db,
            account_id,
            amount,
            payment_ref=f"bank-transfer:{reference}",
            memo="top-up by bank transfer (dashboard)",
            idempotency_key=idempotency_key,
            clock=clock,
        )


_providers: dict[str, PaymentProvider] = {}


def register(provider: PaymentProvider) -> None:
    _providers[provider.name] = provider


def available() -> list[PaymentProvider]:
    chosen = os.environ.get("TELBILL_PAYMENT_PROVIDERS", "").strip()
    if not chosen:
        return list(_providers.values())
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    return [_providers[n] for n in names if n in _providers]


def get(name: str) -> PaymentProvider:
    for provider in available():
        if provider.name == name:
            return provider
    raise InvalidInput(f"unknown payment provider {name!r}")


register(ManualBankTransfer())

__all__ = ["ManualBankTransfer", "PaymentProvider", "available", "get", "register"]
