"""What the ledger services return: frozen views with Decimal amounts, and their loaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from telbill.adapters.db.tables import ledger_accounts, postings, receipts, transactions
from telbill.domain.money import from_minor
from telbill.errors import NotFound


@dataclass(frozen=True, slots=True)
class PostingView:
    ledger_account_id: int
    amount: Decimal
    unit: str
    bucket_kind: str
    owner_account_id: int | None  # None for system accounts
    code: str | None  # system account code ("cash:USD"), None for wallet buckets


@dataclass(frozen=True, slots=True)
class Transaction:
    """A journal transaction; `changes` is the net change to its wallet owner per unit."""

    id: int
    kind: str
    account_id: int | None
    subject_account_id: int | None
    created_at: datetime
    memo: str | None
    details: Mapping[str, Any]
    postings: tuple[PostingView, ...]
    changes: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of a top-up: gross amount paid, the VAT it contains, net, new paid balance."""

    id: int
    number: int
    provider_id: int
    account_id: int
    transaction_id: int
    currency: str
    amount: Decimal
    vat: Decimal
    net: Decimal
    vat_rate: Decimal
    vat_country: str | None
    new_balance: Decimal
    payment_ref: str | None
    created_at: datetime


def load_transactions(conn: Connection, ids: Iterable[int]) -> dict[int, Transaction]:
    """Transactions by id, with their postings."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    posting_rows = conn.execute(
        select(
            postings.c.transaction_id,
            postings.c.ledger_account_id,
            postings.c.amount,
            postings.c.unit,
            ledger_accounts.c.kind,
            ledger_accounts.c.account_id,
            ledger_accounts.c.code,
        )
        .join(ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id)
        .where(postings.c.transaction_id.in_(wanted))
        .order_by(postings.c.id)
    ).all()
    by_tx: dict[int, list[PostingView]] = defaultdict(list)
    for row in posting_rows:
        by_tx[row.transaction_id].append(
            PostingView(
                ledger_account_id=row.ledger_account_id,
                amount=from_minor(row.amount, row.unit),
                unit=row.unit,
                bucket_kind=row.kind,
                owner_account_id=row.account_id,
                code=row.code,
            )
        )
    result: dict[int, Transaction] = {}
    for row in conn.execute(select(transactions).where(transactions.c.id.in_(wanted))):
        views = tuple(by_tx[row.id])
        changes: dict[str, Decimal] = defaultdict(Decimal)
        for view in views:
            if view.owner_account_id is not None and view.owner_account_id == row.account_id:
                changes[view.unit] += view.amount
        result[row.id] = Transaction(
            id=row.id,
            kind=row.kind,
            account_id=row.account_id,
            subject_account_id=row.subject_account_id,
            created_at=row.created_at,
            memo=row.memo,
            details=row.details or {},
            postings=views,
            changes=dict(changes),
        )
    return result


def load_transaction(conn: Connection, transaction_id: int) -> Transaction:
    found = load_transactions(conn, [transaction_id]).get(transaction_id)
    if found is None:
        raise NotFound(f"transaction {transaction_id} not found")
    return found


def _ppm_to_rate(ppm: int) -> Decimal:
    return (Decimal(ppm) / 1_000_000).normalize()


def load_receipt(conn: Connection, receipt_id: int) -> Receipt:
    row = conn.execute(select(receipts).where(receipts.c.id == receipt_id)).first()
    if row is None:
        raise NotFound(f"receipt {receipt_id} not found")
    unit = row.currency
    return Receipt(
        id=row.id,
        number=row.number,
        provider_id=row.provider_id,
        account_id=row.account_id,
        transaction_id=row.transaction_id,
        currency=row.currency,
        amount=from_minor(row.gross_micros, unit),
        vat=from_minor(row.vat_micros, unit),
        net=from_minor(row.net_micros, unit),
        vat_rate=_ppm_to_rate(row.vat_rate_ppm),
        vat_country=row.vat_country,
        new_balance=from_minor(row.new_balance_micros, unit),
        payment_ref=row.payment_ref,
        created_at=row.created_at,
    )
