"""Charging plans and which account uses which: create, assign, look up, and the tariff
cache the charging services price with.

An account uses the plan assigned to it, else the one of its nearest ancestor (a provider
assigns one plan to an organisation and every user under it inherits it). Tariffs are
compiled once per process and version (`TariffCache`), and the version in force at the
usage's start is chosen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, select, update

from telbill.adapters.db.charging_tables import account_plans, charging_plans
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tariff_tables import tariffs
from telbill.domain.batch import BatchRater, compile_batch
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import from_micros, parse_amount, to_micros
from telbill.domain.plans import (
    ALL_CALL_CLASSES,
    CallClass,
    ChargingPlan,
    CutOffPolicy,
    Pricing,
)
from telbill.domain.tariffs import Direction, Service
from telbill.errors import InvalidInput, NotFound
from telbill.services.accounts import load_account
from telbill.services.clock import Clock
from telbill.services.tariffs import load_tariff

DEFAULT_MAX_CALL_S = 3600


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A stored plan: the domain plan plus the charging limits kept beside it."""

    id: int
    plan: ChargingPlan
    max_call_s: int

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def tariff(self) -> str:
        return self.plan.tariff


def _record(row: Any) -> PlanRecord:
    classes = frozenset(CallClass(c) for c in row.allowed_call_classes.split(",") if c)
    return PlanRecord(
        id=row.id,
        plan=ChargingPlan(
            name=row.name,
            tariff=row.tariff,
            pricing=Pricing(row.pricing),
            markup_percent=Decimal(row.markup_percent),
            min_margin=from_micros(row.min_margin_micros),
            allowed_call_classes=classes,
            cut_off=CutOffPolicy(row.cut_off),
            cost_tariff=row.cost_tariff,
        ),
        max_call_s=row.max_call_s,
    )


def _choice(enum: Any, value: object, field: str) -> Any:
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{field} must be one of {choices}, got {value!r}") from None


def create_plan(
    db: Database,
    name: str,
    *,
    tariff: str,
    clock: Clock,
    pricing: str = "fixed",
    markup_percent: Decimal | str | int = 0,
    min_margin: Decimal | str | int = 0,
    allowed_call_classes: frozenset[str] | list[str] | None = None,
    cut_off: str = "hard",
    max_call_s: int = DEFAULT_MAX_CALL_S,
    cost_tariff: str | None = None,
) -> PlanRecord:
    """Store a new plan (its name is unique). Raises InvalidInput for a bad field.

    `cost_tariff`: a fixed-price plan's carrier cost tariff (an imported tariff in the
    plan tariff's currency), so that its charges record their cost (margin)."""
    if not name or not name.strip():
        raise InvalidInput("a plan needs a name")
    if not tariff or not tariff.strip():
        raise InvalidInput("a plan needs a tariff name")
    classes = (
        ALL_CALL_CLASSES
        if allowed_call_classes is None
        else frozenset(_choice(CallClass, c, "call class") for c in allowed_call_classes)
    )
    if not isinstance(max_call_s, int) or max_call_s <= 0:
        raise InvalidInput(f"max_call_s must be a positive integer, got {max_call_s!r}")
    plan = ChargingPlan(
        name=name.strip(),
        tariff=tariff.strip(),
        pricing=_choice(Pricing, pricing, "pricing"),
        markup_percent=parse_amount(markup_percent, field="markup_percent"),
        min_margin=parse_amount(min_margin, field="min_margin"),
        allowed_call_classes=classes,
        cut_off=_choice(CutOffPolicy, cut_off, "cut_off"),
        cost_tariff=_cost_tariff_name(cost_tariff),
    )
    with db.transaction() as conn:
        if _currency_of(conn, plan.tariff) is None:
            raise NotFound(f"no tariff named {plan.tariff!r}: import it first")
        _check_cost_tariff(conn, plan)
        if conn.execute(
            select(charging_plans.c.id).where(charging_plans.c.name == plan.name)
        ).first():
            raise InvalidInput(f"a plan named {plan.name!r} already exists")
        plan_id = conn.execute(
            charging_plans.insert()
            .values(
                name=plan.name,
                tariff=plan.tariff,
                pricing=plan.pricing.value,
                markup_percent=str(plan.markup_percent),
                min_margin_micros=to_micros(plan.min_margin),
                allowed_call_classes=",".join(sorted(c.value for c in classes)),
                cut_off=plan.cut_off.value,
                max_call_s=max_call_s,
                created_at=clock.now(),
                cost_tariff=plan.cost_tariff,
            )
            .returning(charging_plans.c.id)
        ).scalar_one()
    return PlanRecord(id=int(plan_id), plan=plan, max_call_s=max_call_s)


def _cost_tariff_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not name.strip():
        raise InvalidInput("a cost tariff needs a name")
    return name.strip()


def _currency_of(conn: Connection, tariff: str) -> str | None:
    """The currency of the newest version of `tariff` (None: no such tariff imported)."""
    return conn.execute(
        select(tariffs.c.currency)
        .where(tariffs.c.name == tariff)
        .order_by(tariffs.c.version.desc())
        .limit(1)
    ).scalar()


def _check_cost_tariff(conn: Connection, plan: ChargingPlan) -> None:
    """A cost tariff must be imported, in the currency of the plan's tariff (when that one is
    imported already): a cost in another currency could not be subtracted from the price."""
    if plan.cost_tariff is None:
        return
    cost_currency = _currency_of(conn, plan.cost_tariff)
    if cost_currency is None:
        raise NotFound(f"no tariff named {plan.cost_tariff!r}")
    price_currency = _currency_of(conn, plan.tariff)
    if price_currency is not None and price_currency != cost_currency:
        raise InvalidInput(
            f"cost tariff {plan.cost_tariff!r} is in {cost_currency}, "
            f"the plan's tariff {plan.tariff!r} in {price_currency}"
        )


def set_cost_tariff(db: Database, plan_name: str, cost_tariff: str | None) -> PlanRecord:
    """Set (or clear, with None) the carrier cost tariff of the fixed-price plan `plan_name`.

    Charges posted from then on record their cost; charges already posted keep theirs
    (a rerating records the cost difference). Other processes see the change when their
    plan caches expire (a CDR posting run reads plans once; sessions within seconds)."""
    with db.transaction() as conn:
        record = get_plan(conn, plan_name)
        plan = replace(record.plan, cost_tariff=_cost_tariff_name(cost_tariff))
        _check_cost_tariff(conn, plan)
        conn.execute(
            update(charging_plans)
            .where(charging_plans.c.id == record.id)
            .values(cost_tariff=plan.cost_tariff)
        )
    return replace(record, plan=plan)


def list_plans(db: Database) -> list[PlanRecord]:
    """Every charging plan, by name."""
    with db.transaction() as conn:
        rows = conn.execute(select(charging_plans).order_by(charging_plans.c.name))
        return [_record(row) for row in rows]


def get_plan(conn: Connection, name: str) -> PlanRecord:
    row = conn.execute(select(charging_plans).where(charging_plans.c.name == name)).first()
    if row is None:
        raise NotFound(f"no charging plan named {name!r}")
    return _record(row)


def get_plan_by_id(conn: Connection, plan_id: int) -> PlanRecord:
    """The stored plan `plan_id` (plans never change once created, but for their cost
    tariff, which pricing does not read)."""
    row = conn.execute(select(charging_plans).where(charging_plans.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"no charging plan {plan_id}")
    return _record(row)


_assignment_changes: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()


def assignment_changes(engine: Engine) -> int:
    """How many plan assignments this process made on `engine`: caches of "which plan does
    this account use" (`services.sessions`) drop what they knew when it moves."""
    return _assignment_changes.get(engine, 0)


def assign_plan(db: Database, account_id: int, plan_name: str, *, clock: Clock) -> PlanRecord:
    """Make `account_id` (and the accounts under it without their own) use `plan_name`."""
    with db.transaction() as conn:
        load_account(conn, account_id)
        record = get_plan(conn, plan_name)
        conn.execute(account_plans.delete().where(account_plans.c.account_id == account_id))
        conn.execute(
            account_plans.insert().values(
                account_id=account_id, plan_id=record.id, created_at=clock.now()
            )
        )
    _assignment_changes[db.engine] = assignment_changes(db.engine) + 1
    return record


def plan_for(conn: Connection, account_id: int) -> PlanRecord:
    """The plan `account_id` uses: its own assignment, else its nearest ancestor's."""
    current: int | None = account_id
    while current is not None:
        row = conn.execute(
            select(charging_plans)
            .join(account_plans, account_plans.c.plan_id == charging_plans.c.id)
            .where(account_plans.c.account_id == current)
        ).first()
        if row is not None:
            return _record(row)
        current = load_account(conn, current).parent_id
    raise NotFound(f"account {account_id} has no charging plan", account_id=account_id)


class TariffCache:
    """Compiled tariffs per (name, version), shared by the threads of one process.

    Versions are immutable, so a compiled index never goes stale; the list of versions of a
    name is re-read at most every `refresh_s` seconds, so a newly imported version is seen.
    """

    def __init__(self, db: Database, refresh_s: float = 5.0) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._indexes: dict[tuple[str, int], TariffIndex] = {}
        self._raters: dict[tuple[str, int, int, str, str], BatchRater] = {}
        self._versions: dict[str, tuple[float, list[tuple[int, datetime | None]]]] = {}
        self._lock = threading.Lock()

    def _versions_of(self, name: str) -> list[tuple[int, datetime | None]]:
        import time

        now = time.monotonic()
        cached = self._versions.get(name)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        with self.db.read() as conn:
            rows = conn.execute(
                select(tariffs.c.version, tariffs.c.effective_from)
                .where(tariffs.c.name == name)
                .order_by(tariffs.c.version.desc())
            ).all()
        versions = [(int(r.version), _aware(r.effective_from)) for r in rows]
        self._versions[name] = (now, versions)
        return versions

    def version_at(self, name: str, at: datetime) -> int:
        """The newest version of `name` in force at `at` (NotFound when none is)."""
        for version, effective_from in self._versions_of(name):
            if effective_from is None or effective_from <= at:
                return version
        raise NotFound(f"no tariff {name!r} in force at {at.isoformat()}")

    def index(self, name: str, version: int) -> TariffIndex:
        key = (name, version)
        found = self._indexes.get(key)
        if found is None:
            with self._lock:
                found = self._indexes.get(key)
                if found is None:
                    found = compile_tariff(load_tariff(self.db, name, version))
                    self._indexes[key] = found
        return found

    def at(self, name: str, at: datetime) -> TariffIndex:
        return self.index(name, self.version_at(name, at))

    def batch_rater(
        self,
        name: str,
        version: int,
        plan: PlanRecord | None,
        service: Service,
        direction: Direction,
    ) -> BatchRater:
        """The numpy batch rater of a tariff version under a plan, or under none (a carrier
        cost), compiled once: tariff versions and plans' pricing never change."""
        key = (name, version, 0 if plan is None else plan.id, service.value, direction.value)
        found = self._raters.get(key)
        if found is None:
            index = self.index(name, version)
            with self._lock:
                found = self._raters.get(key)
                if found is None:
                    found = compile_batch(
                        index, service=service, direction=direction,
                        plan=None if plan is None else plan.plan,
                    )  # fmt: skip
                    self._raters[key] = found
        return found


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


__all__ = [
    "DEFAULT_MAX_CALL_S",
    "PlanRecord",
    "TariffCache",
    "assign_plan",
    "assignment_changes",
    "create_plan",
    "get_plan",
    "get_plan_by_id",
    "plan_for",
    "set_cost_tariff",
]
