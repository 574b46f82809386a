"""What a month's invoice says, computed from the ledger and the charges with SQL aggregates.

The month is [start, end) of a calendar month in the account's timezone, and an item belongs
to it by its BOOKING time (`transactions.created_at`, `charges.created_at`: the moment the
ledger was debited), not by when a call started: a month whose end has passed can receive
nothing more, so an issued invoice stays true. A call that started at 23:59 on the 31st and
was posted after midnight is on the next month's invoice (and on the call report of the
month it started in).

Lines, by section:

* calls (`charges`, service voice, first postings): per destination (the tariff's name for the
  matched prefix, else the prefix) and direction: count, billed seconds, cost;
* sms: per direction: messages, segments, cost; other usage (speech, fax...): per service;
* numbers, subscriptions, packages: one line per ledger debit (setup fee, rental, period fee,
  package bought; proration credits as negative lines);
* adjustments: operator adjustments (with their reason), rerating differences, usage debited
  without a charge row, and any other kind of ledger debit (so nothing can be left out).

The invoice total is, by construction and checked here, the money the ledger moved out of
the account's wallet (all money buckets in its currency) to revenue and adjustment accounts
in the month: every transaction of the month except payments in (top-ups, invoice
payments), refunds, credit grants, expiries and credit notes, which are listed under
"activity" for the record. Prices are gross: they include VAT, like top-ups and receipts.

Charges in a currency other than the account's cannot be posted (the charging service
refuses a tariff in another currency), so a month that has any is inconsistent data: the
invoice is refused with `InvoiceRefused`, naming the currencies, rather than split.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, case, func, select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.errors import Conflict
from telbill.services.accounts import Account
from telbill.services.tariffs import destination_names

SECTIONS = ("calls", "sms", "usage", "numbers", "subscriptions", "packages", "adjustments")
# Ledger transaction kinds that are not charges: money in or out for other reasons.
NOT_CHARGES = frozenset({"top_up", "invoice_payment", "refund", "grant", "expiry", "credit_note"})
# Services whose debits are itemised from the ledger (few per month), not from `charges`.
FEE_SERVICES = frozenset({"number", "recurring"})
USAGE_SECTIONS = {"voice": "calls", "sms": "sms"}


class InvoiceRefused(Conflict):
    """The month cannot be invoiced as it stands (charges in another currency)."""

    code = "invoice_refused"


@dataclass(frozen=True, slots=True)
class DraftLine:
    section: str
    description: str
    quantity: int
    amount_micros: int
    billed_units: int | None = None
    direction: str | None = None
    destination: str | None = None
    prefix: str | None = None


@dataclass
class Draft:
    """An invoice before it has a number: its lines, total and the month's other activity."""

    lines: list[DraftLine] = field(default_factory=list)
    activity: dict[str, int] = field(default_factory=dict)
    ledger_total_micros: int = 0

    @property
    def total_micros(self) -> int:
        return sum(line.amount_micros for line in self.lines)

    def content_hash(self, vat_rate_ppm: int) -> str:
        """What an issued invoice promises; a recomputation that differs is a late change."""
        body = {
            "lines": [asdict(line) for line in self.lines],
            "activity": dict(sorted(self.activity.items())),
            "vat_rate_ppm": vat_rate_ppm,
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def build_draft(conn: Connection, account: Account, start: datetime, end: datetime) -> Draft:
    """The invoice of `account` (a wallet holder) for bookings in [start, end).

    The reference: a few queries for one account. `build_drafts` computes the same drafts
    for many accounts at once (the month-end run)."""
    flows = _ledger_flows(conn, account, start, end)
    _refuse_other_currencies(conn, account, start, end)
    groups = _usage_groups(conn, account, start, end)
    names = _destination_names(
        conn, [g for g in groups if g.service == "voice"], account.provider_id
    )
    split = _split_flows(flows)
    itemised = _itemised_rows(conn, [account.id], start, end, split.itemised_codes)
    return _assemble(split, groups, names, itemised)


def build_drafts(
    conn: Connection, accounts: Sequence[Account], start: datetime, end: datetime
) -> dict[int, Draft | InvoiceRefused]:
    """`build_draft` of many accounts for the same [start, end), from grouped queries: the
    ledger flows, the usage groups, the destination names and the itemised fees of every
    account read once each (GROUP BY account). Per account id, its draft, or the
    `InvoiceRefused` that `build_draft` would raise. Same lines, same order."""
    if not accounts:
        return {}
    by_id = {account.id: account for account in accounts}
    ids = sorted(by_id)
    flows: dict[int, dict[tuple[str, str], int]] = {i: {} for i in ids}
    groups: dict[int, list[Any]] = {i: [] for i in ids}
    other_currencies: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(ids):
        for account_id, kind, code, total, unit in conn.execute(
            _flows_query(chunk, start, end)
            .add_columns(ledger_accounts.c.unit)
            .group_by(ledger_accounts.c.unit)
        ):
            if unit == by_id[account_id].currency:
                flows[account_id][(str(kind), str(code))] = int(total)
        for g in conn.execute(_usage_query(chunk, start, end)):
            if g.currency != by_id[g.payer_id].currency:
                other_currencies[g.payer_id].add(str(g.currency))
            groups[g.payer_id].append(g)
    providers = {account.provider_id for account in accounts}
    names = {
        provider: _destination_names(
            conn,
            [g for i, found in groups.items() if by_id[i].provider_id == provider
             for g in found if g.service == "voice"],
            provider,
        )  # fmt: skip
        for provider in providers
    }
    splits = {i: _split_flows(flows[i]) for i in ids if i not in other_currencies}
    codes = {code for split in splits.values() for code in split.itemised_codes}
    itemised: dict[int, list[Any]] = defaultdict(list)
    with_codes = [i for i in ids if i in splits and splits[i].itemised_codes]
    for chunk in _chunks(with_codes):
        for row in _itemised_rows(conn, chunk, start, end, codes):
            if row.code in splits[row.account_id].itemised_codes:
                itemised[row.account_id].append(row)
    drafts: dict[int, Draft | InvoiceRefused] = {}
    for i in ids:
        if i in other_currencies:
            drafts[i] = _refusal(by_id[i], other_currencies[i])
        else:
            drafts[i] = _assemble(splits[i], groups[i], names[by_id[i].provider_id], itemised[i])
    return drafts


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass
class _Flows:
    """The month's ledger flows of one account, sorted into what the invoice does with them."""

    activity: dict[str, int] = field(default_factory=dict)
    ledger_total_micros: int = 0
    itemised_codes: set[str] = field(default_factory=set)
    usage_in_ledger: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    other: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def _split_flows(flows: Mapping[tuple[str, str], int]) -> _Flows:
    split = _Flows()
    for (kind, code), amount in flows.items():
        if code.startswith("vat_"):
            continue
        if kind in NOT_CHARGES:
            split.activity[kind] = split.activity.get(kind, 0) - amount
            continue
        split.ledger_total_micros += amount
        area, _, rest = code.partition(":")
        service = rest.rpartition(":")[0]
        if area == "revenue" and service in FEE_SERVICES or area == "adjustments":
            split.itemised_codes.add(code)
        elif area == "revenue":
            split.usage_in_ledger[service] += amount
        else:
            split.other[(kind, code)] += amount
    return split


def _assemble(
    split: _Flows,
    groups: Sequence[Any],
    names: Mapping[tuple[Any, Any, Any], str],
    itemised: Iterable[Any],
) -> Draft:
    """The draft from one account's classified flows, usage groups and itemised rows."""
    draft = Draft(activity=dict(split.activity), ledger_total_micros=split.ledger_total_micros)
    charged = _usage_lines(groups, names, draft)
    draft.lines.extend(_itemised_lines(itemised))
    usage_in_ledger = split.usage_in_ledger
    for service in sorted(set(usage_in_ledger) | set(charged)):
        missing = usage_in_ledger.get(service, 0) - charged.get(service, 0)
        if missing:
            draft.lines.append(
                DraftLine("adjustments", f"Other {service} charges (no call detail)", 1, missing)
            )
    for (kind, code), amount in sorted(split.other.items()):
        if amount:
            draft.lines.append(DraftLine("adjustments", f"{kind} ({code})", 1, amount))
    draft.lines.sort(key=lambda line: SECTIONS.index(line.section))
    # The invoice must say exactly what the ledger did (an assertion that stays on).
    if draft.total_micros != draft.ledger_total_micros:
        raise AssertionError(
            f"invoice lines {draft.total_micros} != ledger debits {draft.ledger_total_micros}"
        )
    return draft


def _flows_query(account_ids: Sequence[int], start: datetime, end: datetime) -> Select[Any]:
    """Money moved by the accounts' transactions of the month to system accounts, per
    (account, kind, system account): positive when it went from the customer to the
    provider."""
    return (
        select(
            transactions.c.account_id, transactions.c.kind, ledger_accounts.c.code,
            func.sum(postings.c.amount),
        )
        .select_from(
            postings.join(transactions, transactions.c.id == postings.c.transaction_id).join(
                ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id
            )
        )
        .where(
            transactions.c.account_id.in_(account_ids),
            transactions.c.created_at >= start,
            transactions.c.created_at < end,
            # System accounts, written so that no index can serve it: the plan must start
            # from the accounts' transactions (a few per account), not from every posting
            # to a system account (all of the month's, of every customer: quadratic over a
            # month-end run in batches).
            func.coalesce(ledger_accounts.c.account_id, 0) == 0,
        )
        .group_by(transactions.c.account_id, transactions.c.kind, ledger_accounts.c.code)
    )  # fmt: skip


def _ledger_flows(
    conn: Connection, account: Account, start: datetime, end: datetime
) -> dict[tuple[str, str], int]:
    """The account's flows in its currency, per (kind, system account). One query."""
    query = _flows_query([account.id], start, end).where(ledger_accounts.c.unit == account.currency)
    return {(str(kind), str(code)): int(total) for _, kind, code, total in conn.execute(query)}


def _refuse_other_currencies(
    conn: Connection, account: Account, start: datetime, end: datetime
) -> None:
    found = {
        str(currency)
        for (currency,) in conn.execute(
            select(charges.c.currency)
            .where(
                charges.c.payer_id == account.id,
                charges.c.created_at >= start,
                charges.c.created_at < end,
                charges.c.currency != account.currency,
            )
            .distinct()
        )
    }
    if found:
        raise _refusal(account, found)


def _refusal(account: Account, found: Iterable[str]) -> InvoiceRefused:
    currencies = sorted(found)
    return InvoiceRefused(
        f"account {account.id} bills in {account.currency} but the month has charges in "
        f"{', '.join(currencies)}: an invoice is in one currency; correct the charges "
        "(rerate them with a tariff in the account's currency) before issuing it",
        currencies=currencies,
    )


def _usage_query(account_ids: Sequence[int], start: datetime, end: datetime) -> Select[Any]:
    """The month's charges of the accounts in groups: per payer, currency, service,
    direction, tariff version, prefix, and first posting or rerating."""
    first = charges.c.revision == 0
    rerated = case((first, 0), else_=1)
    return (
        select(
            charges.c.payer_id, charges.c.currency,
            charges.c.service, charges.c.direction, charges.c.tariff, charges.c.tariff_version,
            charges.c.prefix, rerated.label("rerated"),
            func.count().label("rows"),
            func.coalesce(func.sum(case((first, charges.c.billed_units), else_=0)), 0)
            .label("units"),
            func.coalesce(func.sum(charges.c.amount_micros), 0).label("amount"),
        )
        .where(
            charges.c.payer_id.in_(account_ids),
            charges.c.created_at >= start,
            charges.c.created_at < end,
        )
        .group_by(
            charges.c.payer_id, charges.c.currency,
            charges.c.service, charges.c.direction, charges.c.tariff, charges.c.tariff_version,
            charges.c.prefix, rerated,
        )
    )  # fmt: skip


def _usage_groups(conn: Connection, account: Account, start: datetime, end: datetime) -> list[Any]:
    return list(conn.execute(_usage_query([account.id], start, end)))


def _usage_lines(
    groups: Sequence[Any], names: Mapping[tuple[Any, Any, Any], str], draft: Draft
) -> dict[str, int]:
    """Call, SMS and other usage lines from the month's charge groups; returns the money
    charged per service (all revisions) to compare with the ledger."""
    merged: dict[tuple[str, str, str | None, str | None], list[int]] = {}
    rerating: dict[str, list[int]] = {}
    charged: dict[str, int] = defaultdict(int)
    for g in groups:
        charged[g.service] += int(g.amount)
        if g.rerated:
            totals = rerating.setdefault(g.service, [0, 0])
            totals[0] += int(g.rows)
            totals[1] += int(g.amount)
            continue
        destination = None
        prefix = None
        if g.service == "voice":
            prefix = g.prefix
            destination = names.get((g.tariff, g.tariff_version, g.prefix))
        key = (g.service, g.direction, destination, prefix)
        totals = merged.setdefault(key, [0, 0, 0])
        totals[0] += int(g.rows)
        totals[1] += int(g.units)
        totals[2] += int(g.amount)
    for (service, direction, destination, prefix), (count, units, amount) in sorted(
        merged.items(), key=lambda item: tuple(str(part or "") for part in item[0])
    ):
        section = USAGE_SECTIONS.get(service, "usage")
        draft.lines.append(
            DraftLine(
                section=section,
                description=_usage_description(service, destination, prefix),
                quantity=count,
                amount_micros=amount,
                billed_units=units,
                direction=direction,
                destination=destination,
                prefix=prefix,
            )
        )
    for service, (count, amount) in sorted(rerating.items()):
        draft.lines.append(
            DraftLine("adjustments", f"Rerating of {service} charges", count, amount)
        )
    return charged


def _usage_description(service: str, destination: str | None, prefix: str | None) -> str:
    if service == "voice":
        if destination:
            return f"{destination} ({prefix})" if prefix else destination
        return f"prefix {prefix}" if prefix else "calls"
    return "SMS" if service == "sms" else service


def _destination_names(
    conn: Connection, groups: Iterable[Any], provider: int
) -> dict[tuple[Any, Any, Any], str]:
    """Destination names of the (tariff, version, prefix) of the month's call groups of
    customers of `provider` (from its tariffs, else the operator's)."""
    found = destination_names(
        conn,
        {(g.tariff, g.tariff_version, g.prefix, "voice") for g in groups},
        by=("service",),
        provider=provider,
    )
    return {key[:3]: name for key, name in found.items()}


def _itemised_rows(
    conn: Connection, account_ids: Sequence[int], start: datetime, end: datetime, codes: set[str]
) -> list[Any]:
    """Postings of the accounts' fee and adjustment transactions of the month to system
    accounts `codes`, in transaction then posting order (there are few)."""
    if not codes or not account_ids:
        return []
    query = (
        select(
            transactions.c.account_id, transactions.c.id, transactions.c.kind,
            transactions.c.memo, transactions.c.details, ledger_accounts.c.code,
            postings.c.amount,
        )
        .select_from(
            postings.join(transactions, transactions.c.id == postings.c.transaction_id).join(
                ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id
            )
        )
        .where(
            transactions.c.account_id.in_(account_ids),
            transactions.c.created_at >= start,
            transactions.c.created_at < end,
            transactions.c.kind.not_in(sorted(NOT_CHARGES)),
            # `|| ''` keeps the code's unique index out of the plan: driven by it, SQLite
            # walked every posting ever made to the revenue account once per transaction of
            # the month (quadratic in the ledger's age), instead of the account's month.
            (ledger_accounts.c.code + "").in_(sorted(codes)),
        )
        .order_by(transactions.c.id, postings.c.id)
    )  # fmt: skip
    return list(conn.execute(query))


def _itemised_lines(rows: Iterable[Any]) -> list[DraftLine]:
    """One line per fee or adjustment transaction of the month."""
    # A fee moves money to one system account; JSON details cannot be grouped on PostgreSQL,
    # so postings of one (transaction, account) are added up here.
    items: dict[tuple[int, str], tuple[Any, int]] = {}
    for row in rows:
        key = (int(row.id), str(row.code))
        previous = items.get(key)
        items[key] = (row, int(row.amount) + (previous[1] if previous else 0))
    lines = []
    for row, amount in items.values():
        if not amount:
            continue
        memo = str(row.memo or row.kind)
        if row.code.startswith("adjustments:"):
            lines.append(DraftLine("adjustments", f"Adjustment: {memo}", 1, amount))
        elif row.code.startswith("revenue:number:"):
            lines.append(DraftLine("numbers", memo[:1].upper() + memo[1:], 1, amount))
        elif "package" in _details(row.details):
            lines.append(DraftLine("packages", memo[:1].upper() + memo[1:], 1, amount))
        else:
            lines.append(DraftLine("subscriptions", memo[:1].upper() + memo[1:], 1, amount))
    return lines


def _details(details: Any) -> Mapping[str, Any]:
    return details if isinstance(details, Mapping) else {}


__all__ = [
    "NOT_CHARGES",
    "SECTIONS",
    "Draft",
    "DraftLine",
    "InvoiceRefused",
    "build_draft",
    "build_drafts",
]
