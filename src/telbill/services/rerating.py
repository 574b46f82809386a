"""Rerating: price posted usage again (a tariff was wrong) and post only the differences.

For every charged leg of an account's usage in [start, end) (by the time the usage
started), the stored usage is rated again with `tariff` (default: the plan's tariff in force
at the usage's start; the newest version of a named tariff) under the account's plan. The
money due for the leg is compared with what its charges already took (all revisions); a
difference posts a new charge revision: more is debited (a call already delivered may take
the balance negative), less is credited back to the paid balance from the revenue it went
to. Units once taken from packages stay taken; the money share is recomputed from them.

Rerating again with the same tariff posts nothing: the differences are then zero.

A new revision keeps the campaign of the usage and the difference of the carrier's cost
(`domain.costs`: the new cost minus the cost of the earlier revisions), so that the sums
over a leg's revisions are its price and its cost now. The cost difference is NULL
(unknown) when the new cost, or the cost of an earlier revision, is unknown. A leg whose
money does not change gets no revision, even if its cost would.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from telbill.adapters.db import ledger_store
from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.domain.costs import charge_costs
from telbill.domain.money import from_micros, to_micros
from telbill.domain.rating import rate_event
from telbill.errors import InvalidInput, TelbillError
from telbill.ledger import DrainPolicy, JournalEntry, Posting
from telbill.services.accounts import billing_account, load_account
from telbill.services.charge_costs import cost_index_at
from telbill.services.charging import explanation_json, share_of, usage_from_json
from telbill.services.clock import Clock
from telbill.services.inputs import paid_bucket
from telbill.services.plans import TariffCache, plan_for
from telbill.services.suspension import enforce_zero_balance
from telbill.services.wallets import DebitRequest, debit_many_in


@dataclass(slots=True)
class RerateSummary:
    legs: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)
    difference: Decimal = Decimal(0)
    charge_ids: list[int] = field(default_factory=list)


def rerate(
    db: Database,
    account_id: int,
    *,
    start: datetime,
    end: datetime,
    clock: Clock,
    tariff: str | None = None,
    cache: TariffCache | None = None,
) -> RerateSummary:
    """Rerate `account_id`'s usage (its own, or all it pays for) in [start, end)."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise InvalidInput("rerating needs an aware period with start before end")
    cache = cache or TariffCache(db)
    with db.engine.connect() as conn:
        account = load_account(conn, account_id)
        owner = charges.c.payer_id if account.has_wallet else charges.c.account_id
        rows = conn.execute(
            select(charges)
            .where(owner == account_id, charges.c.occurred_at >= start,
                   charges.c.occurred_at < end)
            .order_by(charges.c.id)
        ).all()  # fmt: skip
        plans = {r.account_id: plan_for(conn, r.account_id) for r in rows}
        conn.rollback()
    legs: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
    usage: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        legs[(row.account_id, row.cdr_id, row.leg)].append(row)
        if row.usage is not None:
            usage[(row.account_id, row.cdr_id)] = row.usage
    summary = RerateSummary()
    plan_updates: list[tuple[Any, int, Any, Any, int | None]] = []
    for (leaf_id, cdr_id, leg), revisions in legs.items():
        summary.legs += 1
        data = usage.get((leaf_id, cdr_id))
        if data is None:
            summary.failed.append(f"{cdr_id}/{leg}: usage not kept")
            continue
        event = usage_from_json(data)
        plan = plans[leaf_id]
        try:
            named = (plan.scope, tariff or plan.tariff)
            index = (
                cache.index(named, cache.version_at(named, clock.now()))
                if tariff
                else cache.at(plan.tariff_ref, event.start)
            )
            rated = rate_event(event, index, plan.plan)
        except TelbillError as exc:
            summary.failed.append(f"{cdr_id}/{leg}: {exc.message}")
            continue
        charge = next((c for c in rated.charges if c.leg.value == leg), None)
        if charge is None:
            summary.failed.append(f"{cdr_id}/{leg}: the new rating has no such leg")
            continue
        first = revisions[0]
        due = share_of(to_micros(charge.amount), charge.billed_units, first.package_units)
        taken = sum(r.amount_micros for r in revisions)
        if due == taken:
            summary.unchanged += 1
            continue
        cost = charge_costs(
            event,
            [charge],
            plan.plan,
            cost_index_at(cache, plan.plan, event.start, scope=plan.scope),
        )[0]
        plan_updates.append(
            (first, due - taken, charge, len(revisions), _cost_difference(cost, revisions))
        )

    def work(conn: Connection) -> RerateSummary:
        now = clock.now()
        for first, difference, charge, revision, cost_difference in plan_updates:
            current = conn.execute(
                select(func.coalesce(func.max(charges.c.revision), 0)).where(
                    charges.c.account_id == first.account_id,
                    charges.c.cdr_id == first.cdr_id,
                    charges.c.leg == first.leg,
                )
            ).scalar_one()
            if current + 1 != revision:
                continue  # rerated concurrently: the next run sees the new revisions
            key = f"rerate:{first.account_id}:{first.cdr_id}:{first.leg}:{revision}"
            tx_id = _post_difference(conn, first, difference, key, now)
            explanation = explanation_json(charge)
            was = _sum(conn, first)
            explanation["text"] = (
                f"rerating of {first.cdr_id} ({first.leg}): was {from_micros(was)} "
                f"{first.currency}, now {from_micros(was + difference)}; difference "
                f"{from_micros(difference)}\n" + explanation["text"]
            )
            charge_id = conn.execute(
                charges.insert()
                .values(
                    cdr_id=first.cdr_id, leg=first.leg, revision=revision,
                    account_id=first.account_id, payer_id=first.payer_id,
                    service=first.service, direction=first.direction,
                    amount_micros=difference, currency=first.currency, unit=first.unit,
                    billed_units=charge.billed_units, package_units=0,
                    tariff=charge.explanation.tariff,
                    tariff_version=charge.explanation.tariff_version,
                    prefix=charge.explanation.matched_prefix, explanation=explanation,
                    usage=None, usage_hash=None, transaction_id=tx_id, source="rerate",
                    occurred_at=first.occurred_at, created_at=now,
                    campaign_id=first.campaign_id, cost_micros=cost_difference,
                )  # fmt: skip
                .returning(charges.c.id)
            ).scalar_one()
            summary.changed += 1
            summary.difference += from_micros(difference)
            summary.charge_ids.append(int(charge_id))
        enforce_zero_balance(conn, {first.payer_id for first, *_ in plan_updates}, now)
        return summary

    return db.run(work)


def _cost_difference(cost: Decimal | None, revisions: list[Any]) -> int | None:
    """The cost to record on a new revision: the new cost less the earlier revisions' (None
    when either is unknown)."""
    if cost is None or any(r.cost_micros is None for r in revisions):
        return None
    return to_micros(cost) - sum(int(r.cost_micros) for r in revisions)


def _sum(conn: Connection, first: Any) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(charges.c.amount_micros), 0)).where(
                charges.c.account_id == first.account_id,
                charges.c.cdr_id == first.cdr_id,
                charges.c.leg == first.leg,
            )
        ).scalar_one()
    )


def _post_difference(
    conn: Connection, first: Any, difference: int, key: str, now: datetime
) -> int | None:
    if difference > 0:
        # The wallet that paid the charge pays the difference: the leaf's own, or the
        # called number's owner's (an inbound toll-free call, `services.number_payers`).
        debited = first.account_id
        if billing_account(conn, first.account_id).id != first.payer_id:
            debited = first.payer_id
        outcome = debit_many_in(
            conn,
            [
                DebitRequest(
                    account_id=debited, amount=from_micros(difference),
                    idempotency_key=key, service=first.service, direction=first.direction,
                    memo=f"rerating of {first.cdr_id}",
                    details={"cdr_id": first.cdr_id, "leg": first.leg, "rerate": True},
                    policy=DrainPolicy.ALLOW_NEGATIVE,
                )
            ],  # fmt: skip
            now=now,
        )[0]
        if isinstance(outcome, TelbillError):
            raise outcome
        return outcome.id
    unit = first.currency
    buckets = ledger_store.load_buckets(conn, [first.payer_id], unit=unit)
    paid = paid_bucket(buckets, unit)
    revenue = ledger_store.system_account(conn, f"revenue:{first.service}:{unit}", unit, now)
    return ledger_store.apply_entry(
        conn,
        JournalEntry(
            kind="rerate_credit",
            account_id=first.payer_id,
            subject_account_id=first.account_id,
            postings=(
                Posting(revenue, difference, unit),
                Posting(paid.id, -difference, unit),
            ),
            memo=f"rerating of {first.cdr_id}",
            details={"cdr_id": first.cdr_id, "leg": first.leg, "rerate": True},
            idempotency_key=key,
        ),
        now,
    )


__all__ = ["RerateSummary", "rerate"]
