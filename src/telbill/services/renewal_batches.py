"""The scheduler's renewals, set-based: the due number and subscription renewals of many
accounts in one transaction, with a few statements per batch instead of ten per renewal.

The rules are those of `numbers.renew_due` and `subscriptions.renew_subscription` (the
one-job versions, still what a single renewal runs), through the same helpers: the same
charges with the same idempotency keys, the same new period ends, suspensions, past-due
marks, free-credit grants and events. The batch reads every rental, subscription, plan and
price in one query each, posts the charges of each instant with one `debit_many_in` (in
run order, so each payer's balance is drained as the jobs one by one would drain it), the
free credits with one `grant_many_in`, and writes the new period ends and events with one
statement each. The job keys are claimed and finished by the caller (`scheduler`).

Only the money a charge drains matters to the next charge of the same payer, and the free
credit a renewal grants is voice-only, never a ``number`` or ``recurring`` fee: posting the
charges before the grants leaves every balance as the one-by-one order leaves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from telbill.adapters.db.lifecycle_tables import (
    number_inventory,
    number_rentals,
    subscription_plans,
    subscriptions,
)
from telbill.domain.money import from_micros
from telbill.errors import InsufficientBalance, NotFound, TelbillError
from telbill.services import numbers as number_service
from telbill.services import subscriptions as subscription_service
from telbill.services.accounts import Account, billing_account
from telbill.services.lifecycle_common import Charge, Grant, emit_many, grant_many_in
from telbill.services.wallets import DebitRequest, debit_many_in

NUMBER_RENEWAL = "number.renewal"
SUBSCRIPTION_RENEWAL = "subscription.renewal"
BATCHED_JOBS = frozenset({NUMBER_RENEWAL, SUBSCRIPTION_RENEWAL})


@dataclass(frozen=True, slots=True)
class Renewal:
    """One claimed renewal job: which, of what, for which period, taking effect `now`."""

    job: str
    entity: int
    period: str
    now: datetime


@dataclass(slots=True)
class _Planned:
    index: int
    renewal: Renewal
    payer: Account
    charge: Charge
    subject: Any  # the Rental, or the subscription row
    extra: Any  # the monthly price, or (plan row, BillingPeriod paid)
    paid: bool = False


@dataclass(frozen=True, slots=True)
class Renewed:
    """What a renewal did: `outcome` (None: not due any more, the key is to be given back)
    and `next_due_at`, the earliest time a job of the same entity may be due again (None:
    nothing was done). A suspension or a past-due mark makes other jobs due at once."""

    outcome: str | None
    next_due_at: datetime | None = None


def renew_many(conn: Connection, renewals: Sequence[Renewal]) -> list[Renewed]:
    """Run `renewals` (in run order) in the caller's transaction; what each did, in order."""
    rentals = _load_rentals(conn, [r.entity for r in renewals if r.job == NUMBER_RENEWAL])
    subs, plans = _load_subscriptions(
        conn, [r.entity for r in renewals if r.job == SUBSCRIPTION_RENEWAL]
    )
    payers: dict[int, Account] = {}

    def payer_of(account_id: int) -> Account:
        if account_id not in payers:
            payers[account_id] = billing_account(conn, account_id)
        return payers[account_id]

    planned: list[_Planned] = []
    for index, renewal in enumerate(renewals):
        if renewal.job == NUMBER_RENEWAL:
            if renewal.entity not in rentals:
                raise NotFound(f"number rental {renewal.entity} not found")
            rental, price = rentals[renewal.entity]
            if not number_service.is_renewal_due(rental, renewal.period, renewal.now):
                continue
            charge = number_service.renewal_charge(rental, price, renewal.period)
            planned.append(
                _Planned(index, renewal, payer_of(rental.account_id), charge, rental, price)
            )
        elif renewal.job == SUBSCRIPTION_RENEWAL:
            row = subs[renewal.entity]
            if not subscription_service.is_renewal_due(row, renewal.period, renewal.now):
                continue
            payer = payer_of(row.account_id)
            plan = plans[row.plan_id]
            period = subscription_service.next_period(row, payer)
            charge = subscription_service.period_charge(row.id, plan, row.seats, row.addons, period)
            planned.append(_Planned(index, renewal, payer, charge, row, (plan, period)))
        else:
            raise ValueError(f"{renewal.job} is not a batched renewal")
    _post_charges(conn, planned)
    outcomes = [Renewed(None)] * len(renewals)
    for item, outcome in zip(planned, _apply(conn, planned), strict=True):
        outcomes[item.index] = outcome
    return outcomes


def _load_rentals(
    conn: Connection, rental_ids: Sequence[int]
) -> dict[int, tuple[number_service.Rental, int]]:
    if not rental_ids:
        return {}
    query = (
        select(number_rentals, number_inventory.c.monthly_price_micros)
        .select_from(
            number_rentals.join(
                number_inventory, number_inventory.c.number == number_rentals.c.number
            )
        )
        .where(number_rentals.c.id.in_(sorted(set(rental_ids))))
        .order_by(number_rentals.c.id)
        .with_for_update(of=number_rentals)
    )
    return {
        row.id: (number_service.rental_of_row(row), int(row.monthly_price_micros))
        for row in conn.execute(query)
    }


def _load_subscriptions(
    conn: Connection, subscription_ids: Sequence[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    if not subscription_ids:
        return {}, {}
    rows = {
        row.id: row
        for row in conn.execute(
            select(subscriptions)
            .where(subscriptions.c.id.in_(sorted(set(subscription_ids))))
            .order_by(subscriptions.c.id)
            .with_for_update()
        )
    }
    missing = set(subscription_ids) - set(rows)
    if missing:
        raise NotFound(f"subscription {min(missing)} not found")
    plans = {
        plan.id: plan
        for plan in conn.execute(
            select(subscription_plans).where(
                subscription_plans.c.id.in_({row.plan_id for row in rows.values()})
            )
        )
    }
    return rows, plans


def _post_charges(conn: Connection, planned: Sequence[_Planned]) -> None:
    """Debit every planned charge, one `debit_many_in` per run of jobs at the same instant;
    marks each paid or not (refused for want of money: nothing written for it)."""
    start = 0
    while start < len(planned):
        now = planned[start].renewal.now
        end = start
        while end < len(planned) and planned[end].renewal.now == now:
            end += 1
        run = planned[start:end]
        start = end
        requests = [
            DebitRequest(
                account_id=item.subject.account_id,  # the payer pays; the owner is recorded
                amount=from_micros(item.charge.amount_micros),
                idempotency_key=item.charge.idempotency_key,
                service=item.charge.service,
                memo=item.charge.memo,
                details=item.charge.details,
            )
            for item in run
            if item.charge.amount_micros > 0
        ]
        results = iter(debit_many_in(conn, requests, now=now) if requests else [])
        for item in run:
            if item.charge.amount_micros <= 0:
                item.paid = True
                continue
            outcome = next(results)
            if isinstance(outcome, InsufficientBalance):
                continue
            if isinstance(outcome, TelbillError):
                raise outcome
            item.paid = True


def _apply(conn: Connection, planned: Sequence[_Planned]) -> list[Renewed]:
    """Write what the charges decided: new period ends, grants, suspensions, events."""
    rental_ends: list[dict[str, Any]] = []
    subscription_periods: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    grants: list[Grant] = []
    outcomes: list[Renewed] = []
    for item in planned:
        renewal = item.renewal
        if renewal.job == NUMBER_RENEWAL:
            rental = item.subject
            if not item.paid:
                number_service.suspend_unpaid(
                    conn, rental, item.payer, item.extra, renewal.period, renewal.now
                )
                outcomes.append(Renewed("suspended", renewal.now))
                continue
            new_end = number_service.renewed_until(rental, item.payer)
            rental_ends.append({"b_id": rental.id, "b_paid_until": new_end})
            events.append(
                number_service.renewed_event(rental, renewal.period, renewal.now, new_end)
            )
            outcomes.append(Renewed("renewed", new_end))
            continue
        row = item.subject
        if not item.paid:
            conn.execute(
                subscriptions.update().where(subscriptions.c.id == row.id).values(status="past_due")
            )
            outcomes.append(Renewed("past_due", renewal.now))
            continue
        plan, period = item.extra
        grant = subscription_service.free_credit_grant(
            row.id, plan, row.seats, period, item.payer, renewal.now
        )
        if grant is not None:
            grants.append(grant)
        subscription_periods.append({"b_id": row.id, "b_start": period.start, "b_end": period.end})
        outcomes.append(Renewed("renewed", period.end))
    grant_many_in(conn, grants)
    if rental_ends:
        conn.execute(
            number_rentals.update()
            .where(number_rentals.c.id == bindparam("b_id"))
            .values(
                paid_until=bindparam("b_paid_until"),
                trial=False,
                renewals=number_rentals.c.renewals + 1,
            ),
            rental_ends,
        )
    if subscription_periods:
        conn.execute(
            subscriptions.update()
            .where(subscriptions.c.id == bindparam("b_id"))
            .values(period_start=bindparam("b_start"), period_end=bindparam("b_end")),
            subscription_periods,
        )
    emit_many(conn, events)
    return outcomes


__all__ = ["BATCHED_JOBS", "Renewal", "Renewed", "renew_many"]
