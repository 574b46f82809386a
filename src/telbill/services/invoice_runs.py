"""Scheduler tasks of invoicing: the month-end invoice run and overdue notices.

* ``invoices.issue``: from the 1st of a month in an account's timezone, issue last month's
  invoice of every account holding a wallet (created before that month ended), once: the
  job key (``invoices.issue``, account id, "YYYY-MM") is claimed in the transaction that
  issues the invoice and emits ``invoice.issued``. Every billing account gets its monthly
  bill, also for a month without a charge (a top-up only, nothing at all): as the
  provider chooses (`empty_month` of the invoice settings, the account's, else its
  provider's), a zero invoice (``invoice``, the default; outcome ``issued``) or a
  statement (``statement``: a ``statement.issued`` notification with the month's
  activity, no invoice number used; outcome ``statement``). Providers' own wallets get
  an invoice only for a month with charges (outcome ``empty``). A month refused for
  mixed currencies is recorded as ``refused`` and left to an operator (`telbill invoice
  run --month` once it is fixed). A late tick that crosses several month-ends issues each
  missed month (up to `MAX_CATCH_UP_MONTHS` back), oldest first; never a month that ended
  before the account was created.
* ``invoices.overdue``: once a postpaid invoice's due date has passed with money still due,
  emit ``invoice.overdue`` once (key ``invoices.overdue``, invoice id, "due").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, String, and_, cast, exists, func, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.invoice_tables import invoice_settings, invoices
from telbill.adapters.db.lifecycle_tables import job_runs
from telbill.adapters.db.tables import accounts
from telbill.domain.money import from_micros
from telbill.errors import InvalidInput
from telbill.services.accounts import Account, AccountKind, load_account, load_accounts
from telbill.services.events import emit
from telbill.services.invoice_builder import Draft, InvoiceRefused, build_drafts
from telbill.services.invoice_payments import settled_micros
from telbill.services.invoices import (
    draft_invoice,
    invoice_status,
    issue_in,
    issue_many_in,
    previous_month,
)
from telbill.services.lifecycle_common import (
    claim_job,
    claim_jobs,
    finish_job,
    finish_jobs,
    lock_account,
    lock_accounts,
)
from telbill.services.reports import month_bounds

ISSUE_JOB = "invoices.issue"
# What a month without a charge gives a customer (`invoice_settings.empty_month`).
EMPTY_MONTH_INVOICE = "invoice"
EMPTY_MONTH_STATEMENT = "statement"
EMPTY_MONTH_CHOICES = (EMPTY_MONTH_INVOICE, EMPTY_MONTH_STATEMENT)
# How many month-ends a late tick catches up on (the month just ended included).
MAX_CATCH_UP_MONTHS = 12
ACCOUNTS_PER_TRANSACTION = 50
# Month-end invoices built and issued set-based; False: one by one, the reference path
# (`invoice_builder.build_draft`, `invoices.issue_in`) the set-based one is tested against.
SET_BASED = True
OVERDUE_JOB = "invoices.overdue"


def _not_run(job: str, entity: object, period: object) -> object:
    return ~exists().where(
        job_runs.c.job == job, job_runs.c.entity == entity, job_runs.c.period == period
    )


def months_to_issue(until: datetime, zone: str, first_created: datetime) -> list[str]:
    """The months ended by `until` in `zone` that may still be due, oldest first: from the
    month of `first_created` (the zone's oldest wallet), at most `MAX_CATCH_UP_MONTHS`."""
    last = previous_month(until, zone)
    year, month = int(last[:4]), int(last[5:])
    months: list[str] = []
    for _ in range(MAX_CATCH_UP_MONTHS):
        candidate = f"{year:04d}-{month:02d}"
        if month_bounds(candidate, zone)[1] <= first_created:
            break
        months.append(candidate)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def issue_month_end(db: Database, until: datetime) -> int:
    """Issue the invoices (or statements) of the months ended by `until`, each month once,
    oldest month first; returns how many invoices were issued."""
    with db.transaction() as conn:
        zones = {
            str(zone): first
            for zone, first in conn.execute(
                select(accounts.c.timezone, func.min(accounts.c.created_at))
                .where(accounts.c.has_wallet)
                .group_by(accounts.c.timezone)
            )
        }
        pending: list[tuple[str, str]] = sorted(
            (month, zone)
            for zone, first in zones.items()
            for month in months_to_issue(until, zone, first)
        )
        due: list[tuple[int, str]] = []
        for month, zone in pending:
            _, month_end = month_bounds(month, zone)
            # The month's keys in one uncorrelated NOT IN (hashed once by PostgreSQL, an
            # ephemeral index on SQLite), not a NOT EXISTS per account: PostgreSQL cannot
            # use the key index for `entity = CAST(id AS VARCHAR)` and scanned every key of
            # the month for every account at every tick. Only the accounts still due come
            # back (none on most ticks), not every account and every key.
            claimed = select(job_runs.c.entity).where(
                job_runs.c.job == ISSUE_JOB, job_runs.c.period == month
            )
            ids = conn.scalars(
                select(accounts.c.id)
                .where(
                    accounts.c.has_wallet,
                    accounts.c.timezone == zone,
                    accounts.c.created_at < month_end,
                    cast(accounts.c.id, String).not_in(claimed),
                )
                .order_by(accounts.c.id)
            )
            due.extend((int(i), month) for i in ids)
    issued = 0
    for start in range(0, len(due), ACCOUNTS_PER_TRANSACTION):
        batch = due[start : start + ACCOUNTS_PER_TRANSACTION]
        issued += db.run(lambda conn, b=batch: _issue_batch(conn, b, until))
    return issued


def _issue_batch(conn: Connection, due: Sequence[tuple[int, str]], now: datetime) -> int:
    """Issue the invoices of a batch of accounts in one transaction: the accounts locked in
    id order, their keys claimed in one statement, their invoices built and issued
    set-based (`build_drafts`, `issue_many_in`; one by one when SET_BASED is off), every
    outcome recorded in one statement. A key another worker holds is skipped."""
    lock_accounts(conn, (account_id for account_id, _ in due))
    won = claim_jobs(conn, [(ISSUE_JOB, str(account_id), month, now) for account_id, month in due])
    claimed = [(a, m) for a, m in due if (ISSUE_JOB, str(a), m) in won]
    if SET_BASED:
        results = _issue_set_based(conn, claimed, now)
    else:
        results = {(a, m): _issue_one(conn, a, m, now) for a, m in claimed}
    outcomes = [(ISSUE_JOB, str(a), m, results[(a, m)]) for a, m in claimed]
    finish_jobs(conn, outcomes)
    return sum(outcome == "issued" for *_, outcome in outcomes)


def _issue_set_based(
    conn: Connection, claimed: Sequence[tuple[int, str]], now: datetime
) -> dict[tuple[int, str], str]:
    """`_issue_one` of many claimed (account, month): the drafts of each month and timezone
    built by grouped queries, the invoices issued in a few statements, numbered in the
    order of `claimed` (as one by one)."""
    by_id = load_accounts(conn, (account_id for account_id, _ in claimed))
    outcomes: dict[tuple[int, str], str] = {}
    drafts: dict[tuple[int, str], Draft] = {}
    groups: dict[tuple[str, str], list[Account]] = {}
    for account_id, month in claimed:
        account = by_id[account_id]
        groups.setdefault((month, account.timezone), []).append(account)
    choices = empty_month_choices(conn, list(by_id.values()))
    statements: list[tuple[Account, str, Draft]] = []
    for (month, zone), members in groups.items():
        start, end = month_bounds(month, zone)
        if end > now:  # `draft_invoice` refuses a month not over
            outcomes.update(((a.id, month), "refused") for a in members)
            continue
        for account_id, draft in build_drafts(conn, members, start, end).items():
            if isinstance(draft, InvoiceRefused):
                outcomes[(account_id, month)] = "refused"
            elif not draft.lines and by_id[account_id].kind is AccountKind.PROVIDER:
                outcomes[(account_id, month)] = "empty"
            elif not draft.lines and choices[account_id] == EMPTY_MONTH_STATEMENT:
                statements.append((by_id[account_id], month, draft))
                outcomes[(account_id, month)] = "statement"
            else:
                drafts[(account_id, month)] = draft
    for account, month, draft in statements:
        _emit_statement(conn, account, month, draft, now)
    to_issue = [(by_id[a], m, drafts[(a, m)]) for a, m in claimed if (a, m) in drafts]
    results = issue_many_in(conn, to_issue, now)
    for (account, month, _), (_, new) in zip(to_issue, results, strict=True):
        outcomes[(account.id, month)] = "issued" if new else "already_issued"
    return outcomes


def _issue_one(conn: Connection, account_id: int, month: str, now: datetime) -> str:
    """Issue one claimed invoice; its outcome (issued, already_issued, empty or refused)."""
    account = load_account(conn, account_id)
    try:
        draft = draft_invoice(conn, account, month, now)
    except (InvoiceRefused, InvalidInput):
        return "refused"
    if not draft.lines and account.kind is AccountKind.PROVIDER:
        return "empty"
    if not draft.lines and empty_month_choices(conn, [account])[account.id] == "statement":
        _emit_statement(conn, account, month, draft, now)
        return "statement"
    _, new = issue_in(conn, account, month, now, draft)
    return "issued" if new else "already_issued"


def empty_month_choices(conn: Connection, members: Sequence[Account]) -> dict[int, str]:
    """Per account, what its months without a charge give: its own `empty_month` setting,
    else its provider's, else a zero invoice."""
    ids = sorted({a.id for a in members} | {a.provider_id for a in members})
    chosen = {
        int(account_id): str(choice)
        for account_id, choice in conn.execute(
            select(invoice_settings.c.account_id, invoice_settings.c.empty_month).where(
                invoice_settings.c.account_id.in_(ids),
                invoice_settings.c.empty_month.is_not(None),
            )
        )
    }
    return {
        a.id: chosen.get(a.id) or chosen.get(a.provider_id) or EMPTY_MONTH_INVOICE for a in members
    }


def _emit_statement(
    conn: Connection, account: Account, month: str, draft: Draft, now: datetime
) -> None:
    """A month's statement: no invoice (nothing was charged), the month's other activity
    (top-ups, refunds...) told to the customer as a ``statement.issued`` notification."""
    emit(
        conn,
        "statement.issued",
        account_id=account.id,
        payload={
            "period": month,
            "currency": account.currency,
            "total": "0",
            "activity": {k: str(from_micros(v)) for k, v in sorted(draft.activity.items())},
        },
        dedupe_key=f"statement.issued:{account.id}:{month}",
        now=now,
    )


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
