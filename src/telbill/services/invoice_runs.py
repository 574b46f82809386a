"""Scheduler tasks of invoicing: the month-end invoice run and overdue notices.

* ``invoices.issue``: from the 1st of a month in an account's timezone, issue last month's
  invoice of every account holding a wallet (created before that month ended), once: the
  job key (``invoices.issue``, account id, "YYYY-MM") is claimed in the transaction that
  issues the invoice and emits ``invoice.issued``. A month with no charge at all issues no
  invoice (outcome ``empty``); a month refused for mixed currencies is recorded as
  ``refused`` and left to an operator (`telbill invoice run --month` once it is fixed).
  Only the month just ended is considered: after a downtime longer than a month, run the
  missed months by hand.
* ``invoices.overdue``: once a postpaid invoice's due date has passed with money still due,
  emit ``invoice.overdue`` once (key ``invoices.overdue``, invoice id, "due").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, String, and_, cast, exists, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.invoice_tables import invoices
from telbill.adapters.db.lifecycle_tables import job_runs
from telbill.adapters.db.tables import accounts
from telbill.domain.money import from_micros
from telbill.errors import InvalidInput
from telbill.services.accounts import load_account
from telbill.services.events import emit
from telbill.services.invoice_builder import InvoiceRefused
from telbill.services.invoice_payments import settled_micros
from telbill.services.invoices import draft_invoice, invoice_status, issue_in, previous_month
from telbill.services.lifecycle_common import claim_job, finish_job, lock_account
from telbill.services.reports import month_bounds

ISSUE_JOB = "invoices.issue"
OVERDUE_JOB = "invoices.overdue"


def _not_run(job: str, entity: object, period: object) -> object:
    return ~exists().where(
        job_runs.c.job == job, job_runs.c.entity == entity, job_runs.c.period == period
    )


def issue_month_end(db: Database, until: datetime) -> int:
    """Issue last month's invoices due at `until`; returns how many were issued."""
    with db.transaction() as conn:
        zones = list(
            conn.scalars(select(accounts.c.timezone).where(accounts.c.has_wallet).distinct())
        )
        due: list[tuple[int, str]] = []
        for zone in sorted(zones):
            month = previous_month(until, zone)
            _, month_end = month_bounds(month, zone)
            ids = conn.scalars(
                select(accounts.c.id)
                .where(
                    accounts.c.has_wallet,
                    accounts.c.timezone == zone,
                    accounts.c.created_at < month_end,
                    _not_run(ISSUE_JOB, cast(accounts.c.id, String), month),
                )
                .order_by(accounts.c.id)
            )
            due.extend((int(account_id), month) for account_id in ids)
    issued = 0
    for account_id, month in due:
        issued += db.run(lambda conn, a=account_id, m=month: _issue_one(conn, a, m, until))
    return issued


def _issue_one(conn: Connection, account_id: int, month: str, now: datetime) -> int:
    lock_account(conn, account_id)
    entity = str(account_id)
    if not claim_job(conn, ISSUE_JOB, entity, month, now):
        return 0
    account = load_account(conn, account_id)
    try:
        draft = draft_invoice(conn, account, month, now)
    except (InvoiceRefused, InvalidInput):
        finish_job(conn, ISSUE_JOB, entity, month, "refused")
        return 0
    if not draft.lines:
        finish_job(conn, ISSUE_JOB, entity, month, "empty")
        return 0
    _, new = issue_in(conn, account, month, now, draft)
    finish_job(conn, ISSUE_JOB, entity, month, "issued" if new else "already_issued")
    return 1 if new else 0


def flag_overdue(db: Database, until: datetime) -> int:
    """Emit ``invoice.overdue`` once per postpaid invoice past its due date with money due."""
    with db.transaction() as conn:
        candidates = list(
            conn.scalars(
                select(invoices.c.id)
                .where(
                    and_(
                        invoices.c.billing_mode == "postpaid",
                        invoices.c.amount_owed_micros > 0,
                        invoices.c.due_at <= until,
                        _not_run(OVERDUE_JOB, cast(invoices.c.id, String), "due"),
                    )
                )
                .order_by(invoices.c.id)
            )
        )
    return sum(db.run(lambda conn, i=int(i): _flag_one(conn, i, until)) for i in candidates)


def _flag_one(conn: Connection, invoice_id: int, now: datetime) -> int:
    row = conn.execute(select(invoices).where(invoices.c.id == invoice_id)).one()
    lock_account(conn, row.account_id)
    entity = str(invoice_id)
    if not claim_job(conn, OVERDUE_JOB, entity, "due", now):
        return 0
    paid, credited = settled_micros(conn, invoice_id)
    status, due = invoice_status(
        row.billing_mode, row.amount_owed_micros, paid, credited, row.due_at, now
    )
    if status != "overdue":
        # Paid (or credited) in full before its due date: it can never become overdue.
        finish_job(conn, OVERDUE_JOB, entity, "due", "settled")
        return 0
    emit(
        conn,
        "invoice.overdue",
        account_id=row.account_id,
        payload={
            "invoice_id": invoice_id,
            "number": row.number,
            "label": f"INV-{row.number}",
            "period": row.period,
            "currency": row.currency,
            "amount_due": str(from_micros(due)),
            "due_at": row.due_at.isoformat(),
        },  # fmt: skip
        dedupe_key=f"invoice.overdue:{invoice_id}",
        now=now,
    )
    finish_job(conn, OVERDUE_JOB, entity, "due", "emitted")
    return 1


__all__ = ["ISSUE_JOB", "OVERDUE_JOB", "flag_overdue", "issue_month_end"]
