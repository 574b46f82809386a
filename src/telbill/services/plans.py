"""Charging plans and which account uses which: create, assign, look up, and the tariff
cache the charging services price with.

An account uses the plan assigned to it, else the one of its nearest ancestor (a provider
assigns one plan to an organisation and every user under it inherits it). Tariffs are
compiled once per process and version (`TariffCache`), and the version in force at the
usage's start is chosen.

Plans belong to a provider (`owner_id`; None: the operator's catalogue), names unique per
owner. A provider names its own plans or the operator's; an account may only be given a plan
of its own provider or of the operator. A plan's tariff (and cost tariff) is a name looked up
in the catalogue of the customer's provider: its own tariff of that name, else the
operator's (`PlanRecord.scope`, `TariffRef`), never another provider's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from time import monotonic
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Connection, Engine, or_, select, update

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
from telbill.services.tariffs import Viewer, load_tariff, resolve_owner

DEFAULT_MAX_CALL_S = 3600

# A tariff name as seen by the customers of a provider (None: the operator's catalogue).
TariffRef = tuple[int | None, str]


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A stored plan: the domain plan plus the charging limits kept beside it.

    `owner_id`: the provider whose catalogue holds it (None: the operator's). `scope`: the
    provider of the account it was looked up for, whose catalogue its tariff names are
    looked up in (None: the operator's)."""

    id: int
    plan: ChargingPlan
    max_call_s: int
    owner_id: int | None = None
    scope: int | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def tariff(self) -> str:
        return self.plan.tariff

    @property
    def tariff_ref(self) -> TariffRef:
        return (self.scope, self.plan.tariff)

    @property
    def cost_ref(self) -> TariffRef | None:
        name = self.plan.cost_tariff_name
        return None if name is None else (self.scope, name)


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
        owner_id=row.owner_id,
        scope=row.owner_id,
    )


def _plan_owned_by(owner: int | None) -> ColumnElement[bool]:
    column = charging_plans.c.owner_id
    return column.is_(None) if owner is None else column == owner


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
    owner: int | None = None,
) -> PlanRecord:
    """Store a new plan in `owner`'s catalogue (None: the operator's; names are unique per
    owner). Raises InvalidInput for a bad field.

    `cost_tariff`: a fixed-price plan's carrier cost tariff (an imported tariff in the
    plan tariff's currency), so that its charges record their cost (margin). A provider's
    plan may name only tariffs it sees (its own, the operator's retail ones)."""
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
        if owner is not None:
            _check_provider(conn, owner)
        if _currency_of(conn, plan.tariff, owner) is None:
            raise NotFound(f"no tariff named {plan.tariff!r}: import it first")
        _check_cost_tariff(conn, plan, owner)
        if conn.execute(
            select(charging_plans.c.id).where(
                charging_plans.c.name == plan.name, _plan_owned_by(owner)
            )
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
                owner_id=owner,
            )
            .returning(charging_plans.c.id)
        ).scalar_one()
    return PlanRecord(
        id=int(plan_id), plan=plan, max_call_s=max_call_s, owner_id=owner, scope=owner
    )


def _check_provider(conn: Connection, provider: int) -> None:
    account = load_account(conn, provider)
    if account.provider_id != account.id:
        raise InvalidInput(f"account {provider} is not a provider")


def _cost_tariff_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not name.strip():
        raise InvalidInput("a cost tariff needs a name")
    return name.strip()


def _currency_of(conn: Connection, tariff: str, owner: int | None) -> str | None:
    """The currency of the newest version of `tariff` as `owner`'s catalogue sees it (None:
    no such tariff imported, or not one `owner` may use)."""
    viewer = Viewer.owner(None) if owner is None else Viewer(owner)
    try:
        found = resolve_owner(conn, tariff, viewer)
    except NotFound:
        return None
    column = tariffs.c.owner_id
    return conn.execute(
        select(tariffs.c.currency)
        .where(tariffs.c.name == tariff, column.is_(None) if found is None else column == found)
        .order_by(tariffs.c.version.desc())
        .limit(1)
    ).scalar()


def _check_cost_tariff(conn: Connection, plan: ChargingPlan, owner: int | None) -> None:
    """A cost tariff must be imported, in the currency of the plan's tariff (when that one is
    imported already): a cost in another currency could not be subtracted from the price.
    A provider's plan names only tariffs that provider sees."""
    if owner is not None and _currency_of(conn, plan.tariff, owner) is None:
        raise NotFound(f"no tariff named {plan.tariff!r}")  # import it first
    if plan.cost_tariff is None:
        return
    cost_currency = _currency_of(conn, plan.cost_tariff, owner)
    if cost_currency is None:
        raise NotFound(f"no tariff named {plan.cost_tariff!r}")
    price_currency = _currency_of(conn, plan.tariff, owner)
    if price_currency is not None and price_currency != cost_currency:
        raise InvalidInput(
            f"cost tariff {plan.cost_tariff!r} is in {cost_currency}, "
            f"the plan's tariff {plan.tariff!r} in {price_currency}"
        )


def set_cost_tariff(
    db: Database, plan_name: str, cost_tariff: str | None, *, provider: int | None = None
) -> PlanRecord:
    """Set (or clear, with None) the carrier cost tariff of the fixed-price plan `plan_name`
    of `provider`'s catalogue (None: the operator's; a provider never changes the
    operator's plans).

    Charges posted from then on record their cost; charges already posted keep theirs
    (a rerating records the cost difference). Other processes see the change when their
    plan caches expire (a CDR posting run reads plans once; sessions within seconds)."""
    with db.transaction() as conn:
        record = get_plan(conn, plan_name, provider=provider)
        if record.owner_id != provider:
            raise NotFound(f"no charging plan named {plan_name!r}")
        plan = replace(record.plan, cost_tariff=_cost_tariff_name(cost_tariff))
        _check_cost_tariff(conn, plan, provider)
        conn.execute(
            update(charging_plans)
            .where(charging_plans.c.id == record.id)
            .values(cost_tariff=plan.cost_tariff)
        )
    return replace(record, plan=plan)


def get_plan(conn: Connection, name: str, *, provider: int | None = None) -> PlanRecord:
    """The plan `name` of `provider`'s catalogue, else the operator's (None: the operator's
    only); another provider's plan is NotFound, like a missing one."""
    owners = _plan_owned_by(None)
    if provider is not None:
        owners = or_(owners, charging_plans.c.owner_id == provider)
    rows = conn.execute(select(charging_plans).where(charging_plans.c.name == name, owners)).all()
    if not rows:
        raise NotFound(f"no charging plan named {name!r}")
    row = next((r for r in rows if r.owner_id is not None), rows[0])
    return replace(_record(row), scope=provider)


def list_plans(db: Database, *, provider: int | None = None) -> list[PlanRecord]:
    """The charging plans `provider` may use: its own and the operator's (None: the
    operator's), by name (its own before the operator's of the same name)."""
    owners = _plan_owned_by(None)
    if provider is not None:
        owners = or_(owners, charging_plans.c.owner_id == provider)
    with db.read() as conn:
        rows = conn.execute(
            select(charging_plans)
            .where(owners)
            .order_by(charging_plans.c.name, charging_plans.c.owner_id.is_(None))
        ).all()
    found: dict[str, PlanRecord] = {}
    for row in rows:
        found.setdefault(row.name, replace(_record(row), scope=provider))
    return list(found.values())


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


def assign_plan(
    db: Database,
    account_id: int,
    plan_name: str,
    *,
    clock: Clock,
    provider: int | None = None,
) -> PlanRecord:
    """Make `account_id` (and the accounts under it without their own) use `plan_name`, a
    plan of the account's provider or of the operator.

    `provider`: the caller acts for that provider: an account outside it is NotFound."""
    with db.transaction() as conn:
        account = load_account(conn, account_id)
        if provider is not None and account.provider_id != provider:
            raise NotFound(f"account {account_id} not found", account_id=account_id)
        record = get_plan(conn, plan_name, provider=account.provider_id)
        conn.execute(account_plans.delete().where(account_plans.c.account_id == account_id))
        conn.execute(
            account_plans.insert().values(
                account_id=account_id, plan_id=record.id, created_at=clock.now()
            )
        )
    _assignment_changes[db.engine] = assignment_changes(db.engine) + 1
    return record


def plan_for(conn: Connection, account_id: int) -> PlanRecord:
    """The plan `account_id` uses: its own assignment, else its nearest ancestor's; its
    tariffs are looked up in the catalogue of the account's provider (`scope`)."""
    account = leaf = load_account(conn, account_id)
    while True:
        row = conn.execute(
            select(charging_plans)
            .join(account_plans, account_plans.c.plan_id == charging_plans.c.id)
            .where(account_plans.c.account_id == account.id)
        ).first()
        if row is not None:
            return replace(_record(row), scope=leaf.provider_id)
        if account.parent_id is None:
            break
        account = load_account(conn, account.parent_id)
    raise NotFound(f"account {account_id} has no charging plan", account_id=account_id)


class TariffCache:
    """Compiled tariffs per (owner, name, version), shared by the threads of one process.

    A tariff is asked for by `TariffRef` (the customer's provider, the name; a bare name is
    the operator's) and found as `plan.tariff_ref` says: the provider's own, else the
    operator's. Versions are immutable, so a compiled index never goes stale; which owner a
    reference names and the list of its versions are re-read at most every `refresh_s`
    seconds, so a newly imported version (or a provider's own new tariff) is seen.
    """

    def __init__(self, db: Database, refresh_s: float = 5.0) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._indexes: dict[tuple[int | None, str, int], TariffIndex] = {}
        self._raters: dict[tuple[int | None, str, int, int, str, str], BatchRater] = {}
        # ref -> (read at, owner it names, its versions newest first, indexes by version)
        self._versions: dict[TariffRef, _RefEntry] = {}
        self._lock = threading.Lock()

    def _entry(self, ref: TariffRef | str) -> tuple[int | None, list[tuple[int, datetime | None]]]:
        """The owner `ref` names and its versions, newest first (none: no such tariff)."""
        key: TariffRef = (None, ref) if isinstance(ref, str) else ref
        now = monotonic()
        cached = self._versions.get(key)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1], cached[2]
        return self._read(key, now)

    def _read(
        self, key: TariffRef, now: float
    ) -> tuple[int | None, list[tuple[int, datetime | None]]]:
        scope, name = key
        with self.db.read() as conn:
            try:
                owner = resolve_owner(conn, name, Viewer.rating(scope))
            except NotFound:
                owner = scope
            column = tariffs.c.owner_id
            rows = conn.execute(
                select(tariffs.c.version, tariffs.c.effective_from)
                .where(
                    tariffs.c.name == name, column.is_(None) if owner is None else column == owner
                )
                .order_by(tariffs.c.version.desc())
            ).all()
        versions = [(int(r.version), _aware(r.effective_from)) for r in rows]
        self._versions[key] = (now, owner, versions, {})
        return owner, versions

    def _versions_of(self, ref: TariffRef | str) -> list[tuple[int, datetime | None]]:
        return self._entry(ref)[1]

    def version_at(self, ref: TariffRef | str, at: datetime) -> int:
        """The newest version of `ref` in force at `at` (NotFound when none is)."""
        for version, effective_from in self._entry(ref)[1]:
            if effective_from is None or effective_from <= at:
                return version
        raise NotFound(f"no tariff {_ref(ref)[1]!r} in force at {at.isoformat()}")

    def index(self, ref: TariffRef | str, version: int) -> TariffIndex:
        entry = self._versions.get((None, ref) if isinstance(ref, str) else ref)
        if entry is not None:  # the hot path: this reference's version, compiled already
            known = entry[3].get(version)
            if known is not None:
                return known
        name = _ref(ref)[1]
        key = (self._entry(ref)[0], name, version)
        found = self._indexes.get(key)
        if found is None:
            with self._lock:
                found = self._indexes.get(key)
                if found is None:
                    tariff = load_tariff(self.db, name, version, viewer=Viewer.owner(key[0]))
                    found = compile_tariff(tariff)
                    self._indexes[key] = found
        self._versions[_ref(ref)][3][version] = found
        return found

    def at(self, ref: TariffRef | str, at: datetime) -> TariffIndex:
        return self.index(ref, self.version_at(ref, at))

    def batch_rater(
        self,
        ref: TariffRef | str,
        version: int,
        plan: PlanRecord | None,
        service: Service,
        direction: Direction,
    ) -> BatchRater:
        """The numpy batch rater of a tariff version under a plan, or under none (a carrier
        cost), compiled once: tariff versions and plans' pricing never change."""
        owner, name = self._entry(ref)[0], _ref(ref)[1]
        plan_id = 0 if plan is None else plan.id
        key = (owner, name, version, plan_id, service.value, direction.value)
        found = self._raters.get(key)
        if found is None:
            index = self.index(ref, version)
            with self._lock:
                found = self._raters.get(key)
                if found is None:
                    found = compile_batch(
                        index, service=service, direction=direction,
                        plan=None if plan is None else plan.plan,
                    )  # fmt: skip
                    self._raters[key] = found
        return found


_RefEntry = tuple[float, int | None, list[tuple[int, datetime | None]], dict[int, TariffIndex]]


def _ref(ref: TariffRef | str) -> TariffRef:
    """A bare tariff name is the operator's."""
    return (None, ref) if isinstance(ref, str) else ref


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


__all__ = [
    "DEFAULT_MAX_CALL_S",
    "PlanRecord",
    "TariffCache",
    "TariffRef",
    "assign_plan",
    "assignment_changes",
    "create_plan",
    "get_plan",
    "get_plan_by_id",
    "list_plans",
    "plan_for",
    "set_cost_tariff",
]
