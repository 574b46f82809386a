"""Reconcile: prove the whole ledger is consistent, or say exactly where it is not.

Checks, over the whole database:
* every wallet bucket's denormalised balance equals the sum of its postings (system accounts
  keep no running balance: theirs is the sum of their postings, their column stays 0);
* every transaction has postings and they sum to zero for every unit;
* every posting is in its ledger account's unit;
* every bucket's ``held`` equals the sum of its open hold lines;
* no bucket other than a paid balance is below zero;
* receipt numbers run 1..n per provider without gaps or duplicates;
* every charge names an existing account, payer, transaction and campaign (`charges`
  declares no foreign keys: its inserts are the busiest of the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Connection, Table, and_, case, exists, func, select

from telbill.adapters.db.charging_tables import campaigns, charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import (
    accounts,
    hold_lines,
    hold_resolutions,
    ledger_accounts,
    postings,
    receipts,
    transactions,
)


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    ledger_accounts: int
    transactions: int
    postings: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def reconcile(db: Database) -> ReconcileReport:
    """Run every check in one read transaction."""
    with db.transaction() as conn:
        problems = [
            *_balances_match_postings(conn),
            *_transactions_balance(conn),
            *_posting_units(conn),
            *_held_matches_open_holds(conn),
            *_no_negative_credit(conn),
            *_receipt_numbers(conn),
            *_charge_references(conn),
        ]
        return ReconcileReport(
            ledger_accounts=_count(conn, ledger_accounts),
            transactions=_count(conn, transactions),
            postings=_count(conn, postings),
            problems=tuple(problems),
        )


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _balances_match_postings(conn: Connection) -> list[Problem]:
    sums = (
        select(postings.c.ledger_account_id, func.sum(postings.c.amount).label("total"))
        .group_by(postings.c.ledger_account_id)
        .subquery()
    )
    total = func.coalesce(sums.c.total, 0)
    rows = conn.execute(
        select(ledger_accounts.c.id, ledger_accounts.c.balance, total.label("total"))
        .select_from(
            ledger_accounts.outerjoin(sums, sums.c.ledger_account_id == ledger_accounts.c.id)
        )
        .where(
            ledger_accounts.c.balance
            != case((ledger_accounts.c.kind == "system", 0), else_=total)
        )
        .order_by(ledger_accounts.c.id)
    )
    return [
        Problem(
            "balance_equals_postings",
            f"ledger account {r.id}",
            f"balance {r.balance} but its postings sum to {r.total}",
        )
        for r in rows
    ]


def _transactions_balance(conn: Connection) -> list[Problem]:
    rows = conn.execute(
        select(postings.c.transaction_id, postings.c.unit, func.sum(postings.c.amount).label("s"))
        .group_by(postings.c.transaction_id, postings.c.unit)
        .having(func.sum(postings.c.amount) != 0)
        .order_by(postings.c.transaction_id)
    )
    problems = [
        Problem(
            "transaction_sums_to_zero",
            f"transaction {r.transaction_id}",
            f"postings in {r.unit} sum to {r.s}, not 0",
        )
        for r in rows
    ]
    empty = conn.execute(
        select(transactions.c.id)
        .where(
            ~select(postings.c.id).where(postings.c.transaction_id == transactions.c.id).exists()
        )
        .order_by(transactions.c.id)
    ).scalars()
    problems += [
        Problem("transaction_sums_to_zero", f"transaction {t}", "has no postings") for t in empty
    ]
    return problems


def _posting_units(conn: Connection) -> list[Problem]:
    rows = conn.execute(
        select(
            postings.c.id,
            postings.c.unit,
            ledger_accounts.c.id.label("la"),
            ledger_accounts.c.unit.label("la_unit"),
        )
        .join(ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id)
        .where(postings.c.unit != ledger_accounts.c.unit)
    )
    return [
        Problem(
            "posting_unit",
            f"posting {r.id}",
            f"in {r.unit} on ledger account {r.la} kept in {r.la_unit}",
        )
        for r in rows
    ]


def _held_matches_open_holds(conn: Connection) -> list[Problem]:
    open_lines = (
        select(hold_lines.c.ledger_account_id, func.sum(hold_lines.c.amount).label("total"))
        .where(
            ~select(hold_resolutions.c.id)
            .where(hold_resolutions.c.hold_id == hold_lines.c.hold_id)
            .exists()
        )
        .group_by(hold_lines.c.ledger_account_id)
        .subquery()
    )
    total = func.coalesce(open_lines.c.total, 0)
    rows = conn.execute(
        select(ledger_accounts.c.id, ledger_accounts.c.held, total.label("total"))
        .select_from(
            ledger_accounts.outerjoin(
                open_lines, open_lines.c.ledger_account_id == ledger_accounts.c.id
            )
        )
        .where(ledger_accounts.c.held != total)
    )
    return [
        Problem(
            "held_equals_open_holds",
            f"ledger account {r.id}",
            f"held {r.held} but open hold lines sum to {r.total}",
        )
        for r in rows
    ]


def _no_negative_credit(conn: Connection) -> list[Problem]:
    rows = conn.execute(
        select(ledger_accounts.c.id, ledger_accounts.c.kind, ledger_accounts.c.balance).where(
            and_(
                ledger_accounts.c.kind.not_in(["paid", "system"]),
                ledger_accounts.c.balance - ledger_accounts.c.held < 0,
            )
        )
    )
    return [
        Problem("credit_not_negative", f"ledger account {r.id}", f"{r.kind} bucket at {r.balance}")
        for r in rows
    ]


def _receipt_numbers(conn: Connection) -> list[Problem]:
    rows = conn.execute(
        select(
            receipts.c.provider_id,
            func.count().label("n"),
            func.count(func.distinct(receipts.c.number)).label("distinct_n"),
            func.min(receipts.c.number).label("lo"),
            func.max(receipts.c.number).label("hi"),
        ).group_by(receipts.c.provider_id)
    )
    return [
        Problem(
            "receipt_numbers",
            f"provider {r.provider_id}",
            f"{r.n} receipts numbered {r.lo}..{r.hi}: expected 1..{r.n} without gaps",
        )
        for r in rows
        if not (r.n == r.distinct_n and r.lo == 1 and r.hi == r.n)
    ]


# Shown per reference kind; the message counts them all.
_SHOWN_DANGLING = 20


def _charge_references(conn: Connection) -> list[Problem]:
    references: tuple[tuple[str, Column[int], Table], ...] = (
        ("account", charges.c.account_id, accounts),
        ("payer", charges.c.payer_id, accounts),
        ("transaction", charges.c.transaction_id, transactions),
        ("campaign", charges.c.campaign_id, campaigns),
    )
    problems: list[Problem] = []
    for name, column, table in references:
        dangling = column.is_not(None) & ~exists().where(table.c.id == column)
        rows = conn.execute(
            select(charges.c.id, column.label("ref"))
            .where(dangling)
            .order_by(charges.c.id)
            .limit(_SHOWN_DANGLING)
        ).all()
        total = len(rows)
        if total == _SHOWN_DANGLING:
            total = int(
                conn.execute(
                    select(func.count()).select_from(charges).where(dangling)
                ).scalar_one()
            )
        problems += [
            Problem(
                "charge_references",
                f"charge {r.id}",
                f"its {name} {r.ref} does not exist ({total} charges with a missing {name})",
            )
            for r in rows
        ]
    return problems


__all__ = ["Problem", "ReconcileReport", "reconcile"]
