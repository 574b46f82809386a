"""Monthly invoices of billing accounts: issue (numbered without gaps), read, list, state.

An invoice covers a calendar month in the account's timezone (see `invoice_builder` for what
it contains and why its total equals the ledger's debits). Rules kept here:

* Numbers are sequential per provider without gaps: the provider's counter row
  (`document_counters`) is locked FOR UPDATE and bumped in the transaction that inserts the
  invoice, so a rolled-back issue gives its number back. Credit notes have their own
  sequence (shown ``CN-n``; invoices ``INV-n``).
* Issued invoices never change: issuing a month again returns the invoice already issued
  when the ledger still says the same, and refuses (`InvoiceImmutable`) when bookings were
  added to the closed month since; the database refuses UPDATE/DELETE of issued documents.
  Corrections are credit notes (`services/credit_notes.py`).
* Prices are gross, VAT included, like the ledger and top-up receipts: VAT = total x rate /
  (1 + rate) at the account's rate, rounded half-up to micro-units once per invoice.
* Prepaid: nothing is owed, the month was paid from the balance ("paid"). Postpaid: the
  total is owed by the due date (issue + the account's payment terms, default 14 days);
  state issued / partially_paid / paid / overdue is derived from payments, credit notes
  and the clock, never stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from telbill.adapters.db.engine import Database, RetryTransaction
from telbill.adapters.db.invoice_tables import (
    credit_notes,
    document_counters,
    invoice_lines,
    invoice_payments,
    invoice_settings,
    invoices,
)
from telbill.adapters.db.tables import accounts
from telbill.domain.money import from_micros
from telbill.errors import Conflict, InvalidInput, NotFound
from telbill.services.accounts import PPM, Account, BillingMode, load_account
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.invoice_builder import Draft, InvoiceRefused, build_draft
from telbill.services.lifecycle_common import emit_many
from telbill.services.reports import month_bounds
from telbill.services.wallets import vat_included

DEFAULT_PAYMENT_TERMS_DAYS = 14
MAX_PAGE = 500


class InvoiceImmutable(Conflict):
    """An issued invoice was asked to change."""

    code = "invoice_immutable"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    section: str
    description: str
    quantity: int
    billed_units: int | None
    amount: Decimal
    direction: str | None
    destination: str | None
    prefix: str | None

    @property
    def minutes(self) -> str | None:
        """Billed time of a call line as M:SS (exact: seconds / 60 with the remainder)."""
        if self.section != "calls" or self.billed_units is None:
            return None
        return f"{self.billed_units // 60}:{self.billed_units % 60:02d}"


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    number: int
    provider_id: int
    account_id: int
    period: str
    period_start: datetime
    period_end: datetime
    timezone: str
    currency: str
    billing_mode: str
    provider_name: str
    customer_name: str
    vat_rate: Decimal
    vat_country: str | None
    net: Decimal
    vat: Decimal
    total: Decimal
    amount_owed: Decimal
    paid: Decimal
    credited: Decimal
    amount_due: Decimal
    status: str
    issued_at: datetime
    due_at: datetime | None
    activity: dict[str, Decimal]
    lines: tuple[InvoiceLine, ...]

    @property
    def label(self) -> str:
        return f"INV-{self.number}"


# ---------------------------------------------------------------------------- numbering


def next_number(conn: Connection, provider_id: int, series: str, count: int = 1) -> int:
    """The next number of `series` for the provider, in the caller's transaction (the first
    of `count` consecutive numbers taken at once).

    The counter row is created once (insert-or-ignore) and then locked FOR UPDATE, so two
    issuers take turns; the numbers are used only if the caller's transaction commits.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(document_counters)
        .values(provider_id=provider_id, series=series, last_number=0)
        .on_conflict_do_nothing(index_elements=["provider_id", "series"])
    )
    where = (document_counters.c.provider_id == provider_id, document_counters.c.series == series)
    last = conn.execute(
        select(document_counters.c.last_number).where(*where).with_for_update()
    ).scalar_one()
    conn.execute(document_counters.update().where(*where).values(last_number=last + count))
    return int(last) + 1


# ---------------------------------------------------------------------------- settings


def payment_terms_days(conn: Connection, account_id: int) -> int:
    terms = conn.execute(
        select(invoice_settings.c.payment_terms_days).where(
            invoice_settings.c.account_id == account_id
        )
    ).scalar_one_or_none()
    return DEFAULT_PAYMENT_TERMS_DAYS if terms is None else int(terms)


# ---------------------------------------------------------------------------- issuing


def invoice_account(conn: Connection, account_id: int) -> Account:
    """The account, which must hold a wallet (invoices go to whoever pays)."""
    account = load_account(conn, account_id)
    if not account.has_wallet:
        raise InvalidInput(
            f"account {account_id} has no wallet: invoices go to the account that pays for it"
        )
    return account


def previous_month(now: datetime, zone: str) -> str:
    """The last whole calendar month before `now` in timezone `zone` ("YYYY-MM")."""
    local = now.astimezone(ZoneInfo(zone))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def draft_invoice(conn: Connection, account: Account, month: str, now: datetime) -> Draft:
    start, end = month_bounds(month, account.timezone)
    if end > now:
        raise InvalidInput(
            f"{month} is not over yet in {account.timezone}: it can be invoiced from "
            f"{end.isoformat()}"
        )
    return build_draft(conn, account, start, end)


def issue_in(
    conn: Connection, account: Account, month: str, now: datetime, draft: Draft | None = None
) -> tuple[int, bool]:
    """Issue the invoice of `month` in the caller's transaction: (invoice id, newly issued).

    Returns the invoice already issued for the month when the ledger still says the same;
    raises InvoiceImmutable when it does not (late bookings: correct by credit note).
    """
    draft = draft or draft_invoice(conn, account, month, now)
    rate_ppm = int(account.vat_rate * PPM)
    content_hash = draft.content_hash(rate_ppm)
    existing = conn.execute(
        select(invoices.c.id, invoices.c.number, invoices.c.content_hash).where(
            invoices.c.account_id == account.id, invoices.c.period == month
        )
    ).first()
    if existing is not None:
        if existing.content_hash != content_hash:
            raise InvoiceImmutable(
                f"invoice INV-{existing.number} of {month} is issued and never changes; the "
                "ledger has changed for that month since: correct it with a credit note",
                invoice_id=existing.id,
            )
        return int(existing.id), False
    postpaid = account.billing_mode is BillingMode.POSTPAID
    provider = load_account(conn, account.provider_id)
    number = next_number(conn, account.provider_id, "invoice")
    due_at = now + timedelta(days=payment_terms_days(conn, account.id)) if postpaid else None
    values = _invoice_row(account, month, draft, number, provider.name, now, due_at)
    try:
        invoice_id = conn.execute(
            invoices.insert().values(**values).returning(invoices.c.id)
        ).scalar_one()
    except IntegrityError as exc:
        # Another process issued this month first: start over, and find it.
        raise RetryTransaction("invoice issued concurrently") from exc
    if draft.lines:
        conn.execute(invoice_lines.insert(), _line_rows(invoice_id, draft))
    emit(conn, "invoice.issued", **_issued_event(invoice_id, values), now=now)
    return int(invoice_id), True


def issue_many_in(
    conn: Connection, items: Sequence[tuple[Account, str, Draft]], now: datetime
) -> list[tuple[int, bool]]:
    """`issue_in` of many (account, month, draft) in the caller's transaction, in a few
    statements (the month-end run): per item (invoice id, newly issued), the same invoices
    as `issue_in` called item by item, numbered in the items' order."""
    keys = [(account.id, month) for account, month, _ in items]
    if len(set(keys)) != len(keys):
        raise InvalidInput("an (account, month) is given twice")
    existing: dict[tuple[int, str], Any] = {}
    ids = sorted({account_id for account_id, _ in keys})
    for start in range(0, len(ids), MAX_PAGE):
        query = select(
            invoices.c.id, invoices.c.account_id, invoices.c.period, invoices.c.number,
            invoices.c.content_hash,
        ).where(
            invoices.c.account_id.in_(ids[start : start + MAX_PAGE]),
            invoices.c.period.in_(sorted({month for _, month in keys})),
        )  # fmt: skip
        existing.update({(row.account_id, row.period): row for row in conn.execute(query)})
    results: list[tuple[int, bool] | None] = []
    new: list[tuple[Account, str, Draft]] = []
    for account, month, draft in items:
        found = existing.get((account.id, month))
        if found is None:
            results.append(None)
            new.append((account, month, draft))
            continue
        if found.content_hash != draft.content_hash(int(account.vat_rate * PPM)):
            raise InvoiceImmutable(
                f"invoice INV-{found.number} of {month} is issued and never changes; the "
                "ledger has changed for that month since: correct it with a credit note",
                invoice_id=found.id,
            )
        results.append((int(found.id), False))
    if new:
        new_ids = iter(_insert_new(conn, new, now))
        results = [r if r is not None else (next(new_ids), True) for r in results]
    return [r for r in results if r is not None]


def _insert_new(
    conn: Connection, items: Sequence[tuple[Account, str, Draft]], now: datetime
) -> list[int]:
    """Number and insert invoices not issued yet, with their lines and events; their ids."""
    provider_ids = sorted({account.provider_id for account, _, _ in items})
    names = {
        int(row.id): str(row.name)
        for row in conn.execute(
            select(accounts.c.id, accounts.c.name).where(accounts.c.id.in_(provider_ids))
        )
    }
    if len(names) != len(provider_ids):
        raise NotFound(f"providers {sorted(set(provider_ids) - set(names))} not found")
    counts = Counter(account.provider_id for account, _, _ in items)
    numbers = {p: next_number(conn, p, "invoice", counts[p]) for p in provider_ids}
    postpaid = [
        account.id for account, _, _ in items if account.billing_mode is BillingMode.POSTPAID
    ]
    terms = dict.fromkeys(postpaid, DEFAULT_PAYMENT_TERMS_DAYS)
    for start in range(0, len(postpaid), MAX_PAGE):
        terms.update(
            (int(account_id), int(days))
            for account_id, days in conn.execute(
                select(invoice_settings.c.account_id, invoice_settings.c.payment_terms_days).where(
                    invoice_settings.c.account_id.in_(postpaid[start : start + MAX_PAGE]),
                    invoice_settings.c.payment_terms_days.is_not(None),
                )
            )
        )
    rows = []
    for account, month, draft in items:
        number = numbers[account.provider_id]
        numbers[account.provider_id] += 1
        due_at = now + timedelta(days=terms[account.id]) if account.id in terms else None
        provider_name = names[account.provider_id]
        rows.append(_invoice_row(account, month, draft, number, provider_name, now, due_at))
    try:
        invoice_ids = [
            int(i)
            for i in conn.scalars(
                invoices.insert().returning(invoices.c.id, sort_by_parameter_order=True), rows
            )
        ]
    except IntegrityError as exc:
        raise RetryTransaction("invoice issued concurrently") from exc
    lines = [
        line
        for invoice_id, (_, _, draft) in zip(invoice_ids, items, strict=True)
        for line in _line_rows(invoice_id, draft)
    ]
    if lines:
        conn.execute(invoice_lines.insert(), lines)
    emit_many(
        conn,
        [
            {"type": "invoice.issued", **_issued_event(invoice_id, values), "occurred_at": now}
            for invoice_id, values in zip(invoice_ids, rows, strict=True)
        ],
    )
    return invoice_ids


def _invoice_row(
    account: Account,
    month: str,
    draft: Draft,
    number: int,
    provider_name: str,
    now: datetime,
    due_at: datetime | None,
) -> dict[str, Any]:
    """The `invoices` row of a draft given its number."""
    rate_ppm = int(account.vat_rate * PPM)
    start, end = month_bounds(month, account.timezone)
    total = draft.total_micros
    vat = vat_included(total, rate_ppm)
    postpaid = account.billing_mode is BillingMode.POSTPAID
    return dict(
        provider_id=account.provider_id,
        number=number,
        account_id=account.id,
        period=month,
        period_start=start,
        period_end=end,
        timezone=account.timezone,
        currency=account.currency,
        billing_mode=account.billing_mode.value,
        provider_name=provider_name,
        customer_name=account.name,
        vat_rate_ppm=rate_ppm,
        vat_country=account.vat_country,
        net_micros=total - vat,
        vat_micros=vat,
        total_micros=total,
        amount_owed_micros=max(total, 0) if postpaid else 0,
        activity=dict(sorted(draft.activity.items())),
        content_hash=draft.content_hash(rate_ppm),
        issued_at=now,
        due_at=due_at,
    )  # fmt: skip


def _line_rows(invoice_id: int, draft: Draft) -> list[dict[str, Any]]:
    return [
        {
            "invoice_id": invoice_id,
            "position": position,
            "section": line.section,
            "description": line.description[:300],
            "direction": line.direction,
            "destination": line.destination,
            "prefix": line.prefix,
            "quantity": line.quantity,
            "billed_units": line.billed_units,
            "amount_micros": line.amount_micros,
        }  # fmt: skip
        for position, line in enumerate(draft.lines, start=1)
    ]


def _issued_event(invoice_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of `emit` for ``invoice.issued`` of an inserted `invoices` row."""
    number = row["number"]
    due_at = row["due_at"]
    return {
        "account_id": row["account_id"],
        "payload": {
            "invoice_id": int(invoice_id),
            "number": number,
            "label": f"INV-{number}",
            "period": row["period"],
            "currency": row["currency"],
            "total": str(from_micros(row["total_micros"])),
            "vat": str(from_micros(row["vat_micros"])),
            "billing_mode": row["billing_mode"],
            "amount_owed": str(from_micros(row["amount_owed_micros"])),
            "due_at": due_at.isoformat() if due_at else None,
        },
        "dedupe_key": f"invoice.issued:{invoice_id}",
    }  # fmt: skip


def issue_invoice(db: Database, account_id: int, month: str, *, clock: Clock) -> Invoice:
    """Issue (or return, unchanged) the invoice of `account_id` for `month` ("YYYY-MM").

    Raises InvalidInput (month not over, no wallet), InvoiceRefused (charges in another
    currency) or InvoiceImmutable (issued, and the ledger changed since).
    """

    def work(conn: Connection) -> Invoice:
        now = clock.now()
        account = invoice_account(conn, account_id)
        invoice_id, _ = issue_in(conn, account, month, now)
        return load_invoice(conn, invoice_id, now=now)

    return db.run(work)


def preview_month_to_date(db: Database, account_id: int, *, clock: Clock) -> Draft:
    """What this month's invoice says so far (bookings up to now), without issuing it."""
    now = clock.now()
    with db.transaction() as conn:
        account = invoice_account(conn, account_id)
        month = f"{now.astimezone(ZoneInfo(account.timezone)):%Y-%m}"
        start, _ = month_bounds(month, account.timezone)
        return build_draft(conn, account, start, now)


# ---------------------------------------------------------------------------- reading


def _sums(conn: Connection, invoice_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    paid = dict(
        conn.execute(
            select(invoice_payments.c.invoice_id, func.sum(invoice_payments.c.amount_micros))
            .where(invoice_payments.c.invoice_id.in_(invoice_ids))
            .group_by(invoice_payments.c.invoice_id)
        ).all()
    )
    credited = dict(
        conn.execute(
            select(credit_notes.c.invoice_id, func.sum(credit_notes.c.total_micros))
            .where(credit_notes.c.invoice_id.in_(invoice_ids))
            .group_by(credit_notes.c.invoice_id)
        ).all()
    )
    return {k: int(v) for k, v in paid.items()}, {k: int(v) for k, v in credited.items()}


def invoice_status(
    billing_mode: str, owed: int, paid: int, credited: int, due_at: datetime | None, now: datetime
) -> tuple[str, int]:
    """(state, amount due in micros) of an invoice at `now`."""
    if billing_mode != BillingMode.POSTPAID.value:
        return "paid", 0
    due = max(owed - paid - credited, 0)
    if due == 0:
        return "paid", 0
    if due_at is not None and now >= due_at:
        return "overdue", due
    if paid or credited:
        return "partially_paid", due
    return "issued", due


def _invoice(
    row: Any, lines: tuple[InvoiceLine, ...], paid: int, credited: int, now: datetime
) -> Invoice:
    status, due = invoice_status(
        row.billing_mode, row.amount_owed_micros, paid, credited, row.due_at, now
    )
    return Invoice(
        id=row.id, number=row.number, provider_id=row.provider_id, account_id=row.account_id,
        period=row.period, period_start=row.period_start, period_end=row.period_end,
        timezone=row.timezone, currency=row.currency, billing_mode=row.billing_mode,
        provider_name=row.provider_name, customer_name=row.customer_name,
        vat_rate=(Decimal(row.vat_rate_ppm) / PPM).normalize(), vat_country=row.vat_country,
        net=from_micros(row.net_micros), vat=from_micros(row.vat_micros),
        total=from_micros(row.total_micros), amount_owed=from_micros(row.amount_owed_micros),
        paid=from_micros(paid), credited=from_micros(credited), amount_due=from_micros(due),
        status=status, issued_at=row.issued_at, due_at=row.due_at,
        activity={k: from_micros(int(v)) for k, v in (row.activity or {}).items()},
        lines=lines,
    )  # fmt: skip


def load_invoice(conn: Connection, invoice_id: int, *, now: datetime) -> Invoice:
    row = conn.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    lines = tuple(
        InvoiceLine(
            section=r.section,
            description=r.description,
            quantity=int(r.quantity),
            billed_units=r.billed_units,
            amount=from_micros(r.amount_micros),
            direction=r.direction,
            destination=r.destination,
            prefix=r.prefix,
        )  # fmt: skip
        for r in conn.execute(
            select(invoice_lines)
            .where(invoice_lines.c.invoice_id == invoice_id)
            .order_by(invoice_lines.c.position)
        )
    )
    paid, credited = _sums(conn, [invoice_id])
    return _invoice(row, lines, paid.get(invoice_id, 0), credited.get(invoice_id, 0), now)


def get_invoice(db: Database, invoice_id: int, *, clock: Clock) -> Invoice:
    with db.transaction() as conn:
        return load_invoice(conn, invoice_id, now=clock.now())


def list_invoices(
    db: Database, account_id: int, *, clock: Clock, status: str | None = None, limit: int = 100
) -> list[Invoice]:
    """Invoices of `account_id`, newest period first (without their lines)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    with db.transaction() as conn:
        load_account(conn, account_id)
        query = (
            select(invoices)
            .where(invoices.c.account_id == account_id)
            .order_by(invoices.c.period.desc(), invoices.c.id.desc())
        )
        # The state depends on the clock, so a status filter reads every invoice of the
        # account (twelve a year) and pages after filtering.
        rows = conn.execute(query if status else query.limit(limit)).all()
        paid, credited = _sums(conn, [r.id for r in rows])
    now = clock.now()
    found = [_invoice(r, (), paid.get(r.id, 0), credited.get(r.id, 0), now) for r in rows]
    return [i for i in found if status is None or i.status == status][:limit]


__all__ = [
    "DEFAULT_PAYMENT_TERMS_DAYS",
    "Invoice",
    "InvoiceImmutable",
    "InvoiceLine",
    "InvoiceRefused",
    "draft_invoice",
    "get_invoice",
    "invoice_account",
    "invoice_status",
    "issue_in",
    "issue_invoice",
    "issue_many_in",
    "list_invoices",
    "load_invoice",
    "next_number",
    "payment_terms_days",
    "preview_month_to_date",
    "previous_month",
]
