"""Margin: what a provider's customers were charged for usage, what the carriers cost, and
the difference, per destination (tariff prefix) and month, read from `charges`.

Rules:

* The charges counted are those paid by a wallet of the provider's subtree (`payer_id`), in
  [start, end) by the time the usage started; a month is one of the provider's timezone.
* A charge's cost is `charges.cost_micros` (`domain.costs`): NULL means unknown. Margin and
  margin % are computed over the charges whose cost is known only; the revenue and number of
  the charges of unknown cost are reported beside them, never as a zero cost.
* Margin % is the margin over the revenue of the costed charges (gross margin), rounded
  half-up to one decimal; None when that revenue is zero.
* A rerating adds rows with the difference of money and of cost, so sums over rows are the
  price and the cost after rerating. Charges and billed units are counted from first
  postings (a rerating row repeats the units).
* Cost is the carrier's cost of the whole leg, also when a package paid for its units: the
  money of such a leg is what the wallet paid (often 0), the package was paid when bought.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.domain.money import format_amount, from_micros
from telbill.services.accounts import load_account
from telbill.services.reports import month_bounds, subtree
from telbill.services.tariffs import destination_names


@dataclass(frozen=True, slots=True)
class MarginFigures:
    """Sums over a set of charges (money in the currency's units)."""

    currency: str
    charges: int = 0
    billed_units: int = 0
    revenue: Decimal = Decimal(0)
    costed_revenue: Decimal = Decimal(0)  # revenue of the charges whose cost is known
    cost: Decimal = Decimal(0)  # of those charges
    unknown_charges: int = 0
    unknown_revenue: Decimal = Decimal(0)

    @property
    def costed_charges(self) -> int:
        return self.charges - self.unknown_charges

    @property
    def margin(self) -> Decimal | None:
        """Revenue less cost of the costed charges (None: no charge has a known cost)."""
        if self.costed_charges <= 0 and not self.cost and not self.costed_revenue:
            return None
        return self.costed_revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        margin = self.margin
        if margin is None or not self.costed_revenue:
            return None
        percent = margin * 100 / self.costed_revenue
        return percent.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class MarginRow(MarginFigures):
    """One destination: a tariff's prefix, its destination name, a service."""

    tariff: str | None = None
    prefix: str | None = None
    destination: str | None = None
    service: str = ""


@dataclass(frozen=True, slots=True)
class MarginReport:
    account_id: int
    month: str
    timezone: str
    start: datetime
    end: datetime
    rows: list[MarginRow]
    totals: list[MarginFigures]


_KNOWN = charges.c.cost_micros.is_not(None)
_FIRST = charges.c.revision == 0


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum_if(condition: Any, value: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)


def margin_by_destination(
    db: Database, account_id: int, start: datetime, end: datetime
) -> list[MarginRow]:
    """Per tariff prefix and service, the charges paid by `account_id`'s subtree in
    [start, end): revenue, cost and margin (module rules), largest revenue first."""
    tree = subtree(account_id)
    key = (
        charges.c.tariff, charges.c.tariff_version, charges.c.prefix, charges.c.service,
        charges.c.currency,
    )  # fmt: skip
    query = (
        sa.select(
            *key,
            _count(_FIRST),
            _sum_if(_FIRST, charges.c.billed_units),
            sa.func.coalesce(sa.func.sum(charges.c.amount_micros), 0),
            _sum_if(_KNOWN, charges.c.amount_micros),
            sa.func.coalesce(sa.func.sum(charges.c.cost_micros), 0),
            _count(_FIRST & charges.c.cost_micros.is_(None)),
            _sum_if(charges.c.cost_micros.is_(None), charges.c.amount_micros),
        )
        .where(
            charges.c.payer_id.in_(sa.select(tree.c.id)),
            charges.c.occurred_at >= start,
            charges.c.occurred_at < end,
        )
        .group_by(*key)
    )
    with db.engine.connect() as conn:
        grouped = conn.execute(query).all()
        provider = load_account(conn, account_id).provider_id  # names from its tariffs
        names = destination_names(
            conn, {tuple(r[:4]) for r in grouped}, by=("service",), provider=provider
        )
    merged: dict[tuple[Any, ...], list[int]] = {}
    for tariff, version, prefix, service, currency, *sums in grouped:
        name = names.get((tariff, version, prefix, service))
        merged_key = (tariff, prefix, name, service, currency)
        totals = merged.setdefault(merged_key, [0] * len(sums))
        for i, value in enumerate(sums):
            totals[i] += int(value or 0)
    rows = [
        MarginRow(
            currency, n, units, from_micros(revenue), from_micros(costed), from_micros(cost),
            unknown, from_micros(unknown_revenue), tariff, prefix, destination, service,
        )  # fmt: skip
        for (tariff, prefix, destination, service, currency), (
            n, units, revenue, costed, cost, unknown, unknown_revenue
        ) in merged.items()
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (r.currency, -r.revenue, r.prefix or "", r.service))


def totals_of(rows: Iterable[MarginFigures]) -> list[MarginFigures]:
    """The sums of `rows` per currency, in currency order."""
    by_currency: dict[str, MarginFigures] = {}
    for row in rows:
        seen = by_currency.get(row.currency, MarginFigures(row.currency))
        by_currency[row.currency] = MarginFigures(
            row.currency,
            seen.charges + row.charges,
            seen.billed_units + row.billed_units,
            seen.revenue + row.revenue,
            seen.costed_revenue + row.costed_revenue,
            seen.cost + row.cost,
            seen.unknown_charges + row.unknown_charges,
            seen.unknown_revenue + row.unknown_revenue,
        )
    return [by_currency[c] for c in sorted(by_currency)]


def margin_report(db: Database, account_id: int, month: str) -> MarginReport:
    """Margin per destination of `account_id`'s subtree (a provider's, usually) in `month`
    ("YYYY-MM") of the account's timezone."""
    with db.read() as conn:
        zone = load_account(conn, account_id).timezone
    start, end = month_bounds(month, zone)
    rows = margin_by_destination(db, account_id, start, end)
    return MarginReport(account_id, month, zone, start, end, rows, totals_of(rows))


CSV_HEADER = (
    "destination", "prefix", "service", "tariff", "currency", "charges", "billed_units",
    "revenue", "cost", "margin", "margin_percent", "unknown_cost_charges",
    "unknown_cost_revenue",
)  # fmt: skip


def _text(value: Decimal | None) -> str:
    return "" if value is None else format_amount(value)


def figures_json(row: MarginFigures) -> dict[str, Any]:
    """A row or a total as JSON: money as exact decimal text, unknown as null."""
    data: dict[str, Any] = {}
    if isinstance(row, MarginRow):
        data.update(
            destination=row.destination, prefix=row.prefix, service=row.service,
            tariff=row.tariff,
        )  # fmt: skip
    percent = row.margin_percent
    margin = row.margin
    data.update(
        currency=row.currency, charges=row.charges, billed_units=row.billed_units,
        revenue=format_amount(row.revenue), costed_revenue=format_amount(row.costed_revenue),
        cost=None if margin is None else format_amount(row.cost),
        margin=None if margin is None else format_amount(margin),
        margin_percent=None if percent is None else f"{percent:f}",
        unknown_cost_charges=row.unknown_charges,
        unknown_cost_revenue=format_amount(row.unknown_revenue),
    )  # fmt: skip
    return data


def report_json(report: MarginReport) -> dict[str, Any]:
    return {
        "account_id": report.account_id,
        "month": report.month,
        "timezone": report.timezone,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "totals": [figures_json(t) for t in report.totals],
        "items": [figures_json(r) for r in report.rows],
    }


def csv_lines(report: MarginReport) -> Iterator[str]:
    """The report's rows as CSV text (header first), one line per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in report.rows:
        margin = row.margin
        writer.writerow(
            [
                row.destination or "", row.prefix or "", row.service, row.tariff or "",
                row.currency, row.charges, row.billed_units, format_amount(row.revenue),
                "" if margin is None else format_amount(row.cost), _text(margin),
                "" if row.margin_percent is None else f"{row.margin_percent:f}",
                row.unknown_charges, format_amount(row.unknown_revenue),
            ]
        )  # fmt: skip
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


__all__ = [
    "CSV_HEADER",
    "MarginFigures",
    "MarginReport",
    "MarginRow",
    "csv_lines",
    "figures_json",
    "margin_by_destination",
    "margin_report",
    "report_json",
    "totals_of",
]
