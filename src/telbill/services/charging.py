"""Post CDRs to balances: rate each usage event with its account's plan and charge the
wallet that pays for it, in the same database transaction.

Rules:

* The CDR id is the idempotency key (scoped by the leaf account that made the usage): a
  charge row per rated leg is unique on (account, CDR id, leg), written in the transaction
  that posts its debit. Posting a file twice, or again after a crash, charges nothing more
  (`duplicates`); the same CDR id with different content is `refused` and quarantined.
* One transaction per chunk of `chunk_size` records (`wallets.debit_many_in`): a crash loses
  at most the chunk in flight, and that chunk is re-posted whole on the next run.
* Packages first: a leg whose unit (``s:call``, ``s:speech``, ``msg:sms``) has a package in
  the wallet takes its billed units from the package; the money charged is the leg's price
  times the share of units the packages did not cover (rounded half-up to micros). Money
  then drains free/trial/directional credit before the paid balance (the ledger's rule).
* Who pays: the wallet of the event's account (its nearest account with a wallet), except
  where rating says the number's owner pays (an inbound call or message to a toll-free
  number): then the wallet of the account renting the called number (`number_payers`:
  rental active or suspended in grace, looked up by the E.164 number). A number not in our
  inventory, or rented outside the poster's subtree, falls back to the event's account. The
  charge row keeps the leaf account that made the usage and the payer.
* Usage already happened, so a CDR is posted even if it takes a prepaid balance below zero
  (`DrainPolicy.ALLOW_NEGATIVE`); reaching zero then suspends the account, pauses its
  campaigns and disconnects its hard-cut-off sessions (`services.suspension`).
* Bad rows (unreadable, unknown account, no rate, refused call class) are quarantined with
  their source, line and reason; the rest of the chunk posts. `repost_quarantined` posts
  fixed rows again.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from telbill.adapters.db import bulk, ledger_store
from telbill.adapters.db.bulk import json_text, timestamp_param
from telbill.adapters.db.charged import charged_pairs
from telbill.adapters.db.charging_tables import campaigns, cdr_quarantine, charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import package_purchases
from telbill.adapters.db.tables import accounts
from telbill.adapters.formats.cdr_columns import CdrBlock, NativeColumnsReader
from telbill.domain.batch import BatchRater, CdrColumns
from telbill.domain.batch import Status as BatchStatus
from telbill.domain.inputs import printable, printable_value
from telbill.domain.money import CALL_TIME, from_micros, to_micros
from telbill.domain.numbers import normalize_number
from telbill.domain.rating import Charge, Explanation, Leg, Payer, explain_text, rate_event
from telbill.domain.tariffs import Direction, RowError, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput, NotFound, TelbillError
from telbill.ledger import Bucket
from telbill.services import idempotency, numbers, thresholds
from telbill.services.accounts import Account, billing_account, load_account
from telbill.services.charge_costs import CostRequest, leg_cost_micros
from telbill.services.charging_columns import (
    RatedColumns,
    rate_columns,
    traffic_numbers,
    write_fast_charges,
)
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.number_payers import number_owner_payer
from telbill.services.plans import (
    PlanRecord,
    TariffCache,
    TariffRef,
    get_plan_by_id,
    plan_for,
)
from telbill.services.suspension import enforce_zero_balance
from telbill.services.tariffs import owner_at
from telbill.services.usage_debits import (
    UsageBatch,
    UsageLeg,
    UsageLegTable,
    money_after,
    post_usage_legs,
    share_of,
)

DEFAULT_CHUNK_SIZE = 5_000
MAX_QUARANTINED_TEXT = 1_000  # characters kept of each column of a quarantined row
MAX_PROBLEMS = 1_000  # bad records listed in a PostSummary (all are counted and quarantined)
_EXPLANATION_FIELDS = tuple(f.name for f in dataclasses.fields(Explanation))


@dataclass(slots=True)
class PostSummary:
    """What a posting run did. `charged` is money per currency."""

    records: int = 0
    posted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    refused: int = 0
    charged: dict[str, Decimal] = field(default_factory=dict)
    # The first MAX_PROBLEMS records quarantined or refused: {"line", "cdr_id", "reason"}.
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: PostSummary) -> None:
        self.records += other.records
        self.posted += other.posted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.refused += other.refused
        self.problems.extend(other.problems[: max(0, MAX_PROBLEMS - len(self.problems))])
        for currency, amount in other.charged.items():
            self.charged[currency] = self.charged.get(currency, Decimal(0)) + amount


@dataclass(frozen=True, slots=True)
class Bad:
    """A record to quarantine."""

    line: int | None
    cdr_id: str | None
    reason: str
    raw: Mapping[str, Any]
    account_id: int | None = None  # the account that made the usage, when it is known


@dataclass(slots=True)
class _Leg:
    """One priced leg, as posted. `charge` is None for a leg priced by the batch rater:
    its explanation is derived on demand (`get_charge`) from the stored usage, tariff
    version and plan, by `rate_event`, which the batch rater equals bit for bit."""

    leg: str
    service: str
    direction: str
    amount_micros: int
    currency: str
    unit: str
    billed_units: int
    tariff: str | None
    tariff_version: int | None
    prefix: str | None
    charge: Charge | None = None
    cost_micros: int | None = None  # the carrier's cost (None: unknown), `charge_costs`

    @classmethod
    def of(cls, charge: Charge) -> _Leg:
        e = charge.explanation
        return cls(
            charge.leg.value, charge.service.value, charge.direction.value,
            to_micros(charge.amount), charge.currency, charge.unit, charge.billed_units,
            e.tariff, e.tariff_version, e.matched_prefix, charge,
        )  # fmt: skip


@dataclass(slots=True)
class _Rated:
    event: UsageEvent
    leaf: Account
    payer: Account
    plan: PlanRecord
    legs: list[_Leg]
    usage_text: str  # canonical `usage_json` text: stored with the charge and hashed
    usage_hash: str
    campaign_id: int | None = None

    @property
    def usage(self) -> dict[str, Any]:
        return usage_json(self.event)


# ---------------------------------------------------------------------------- helpers


def usage_json(event: UsageEvent) -> dict[str, Any]:
    """The fields of `event` that rating reads, as JSON (kept with the charge to rerate)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": event.id,
        "account": event.account,
        "user": event.user,
        "service": event.service.value,
        "direction": event.direction.value,
        "from": event.from_number,
        "to": event.to_number,
        "start": iso(event.start),
        "answer": iso(event.answer),
        "end": iso(event.end),
        "duration_s": event.duration_s,
        "text": event.text,
        "segments": event.segments,
        "speech_s": event.speech_s,
        "call_class": event.call_class,
        "call_segments": [
            [iso(s.start), iso(s.end), s.billable] for s in event.call_segments
        ],
        # Only when named: the usage (and its hash) of a CDR without one is unchanged.
        **({"campaign": event.campaign} if event.campaign is not None else {}),
    }


_json_string = json.encoder.encode_basestring_ascii


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else str(_json_string(value))


def _int_or_null(value: int | None) -> str:
    if value is None:
        return "null"
    return str(value) if type(value) is int else json.dumps(value)


def _time_or_null(moment: datetime | None) -> str:
    return "null" if moment is None else f'"{moment.isoformat()}"'


_CAMPAIGN = '"campaign":'


def usage_text(event: UsageEvent) -> str:
    """``json.dumps(usage_json(event), sort_keys=True, separators=(",", ":"))``, built
    directly (a CDR batch makes one per CDR): the stored usage and the input of its hash."""
    quote = _json_string
    user, from_ = event.user, event.from_number
    segments = (
        ",".join(
            f"[{_time_or_null(s.start)},{_time_or_null(s.end)},{json.dumps(s.billable)}]"
            for s in event.call_segments
        )
        if event.call_segments
        else ""
    )
    return (
        f'{{"account":{quote(event.account)},'
        f'"answer":{_time_or_null(event.answer)},'
        f'"call_class":{_text_or_null(event.call_class)},"call_segments":[{segments}],'
        f"{'' if event.campaign is None else f'{_CAMPAIGN}{quote(event.campaign)},'}"
        f'"direction":"{event.direction.value}",'
        f'"duration_s":{_int_or_null(event.duration_s)},'
        f'"end":{_time_or_null(event.end)},'
        f'"from":{"null" if from_ is None else quote(from_)},"id":{quote(event.id)},'
        f'"segments":{_int_or_null(event.segments)},"service":"{event.service.value}",'
        f'"speech_s":{_int_or_null(event.speech_s)},"start":"{event.start.isoformat()}",'
        f'"text":{_text_or_null(event.text)},"to":{quote(event.to_number)},'
        f'"user":{"null" if user is None else quote(user)}}}'
    )


def usage_hash(text: str) -> str:
    """Hash of a usage's canonical text (equal to `_hash(usage_json(event))`)."""
    return hashlib.sha256(text.encode()).hexdigest()


def usage_from_json(data: Mapping[str, Any]) -> UsageEvent:
    """Inverse of `usage_json`."""
    from telbill.domain.usage import CallSegment

    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    start = when(data["start"])
    assert start is not None
    return UsageEvent(
        id=data["id"],
        account=data["account"],
        user=data.get("user"),
        service=Service(data["service"]),
        direction=Direction(data["direction"]),
        from_number=data.get("from"),
        to_number=data["to"],
        start=start,
        answer=when(data.get("answer")),
        end=when(data.get("end")),
        duration_s=data.get("duration_s"),
        text=data.get("text"),
        segments=data.get("segments"),
        speech_s=data.get("speech_s") or 0,
        call_class=data.get("call_class"),
        campaign=data.get("campaign"),
        call_segments=tuple(
            CallSegment(when(s[0]) or start, when(s[1]) or start, bool(s[2]))
            for s in data.get("call_segments") or ()
        ),
    )


def _hash(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def explanation_json(charge: Charge) -> dict[str, Any]:
    """The charge's explanation as JSON, with its person-readable text."""
    explanation = charge.explanation
    data: dict[str, Any] = {
        name: _jsonable(getattr(explanation, name)) for name in _EXPLANATION_FIELDS
    }
    data["text"] = explain_text(charge)
    data["payer"] = charge.payer.value
    return data


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class AccountResolver:
    """Finds accounts named in CDRs by id (digits) or by name; remembers what it found."""

    def __init__(self, within: int | None = None, *, poster: int | None = None) -> None:
        # When set, only accounts in this subtree may be charged (an API caller's scope).
        self.within = within
        # Who posts (an API caller's account, the CLI's --account): owns quarantined rows.
        self.poster = poster if poster is not None else within
        self.providers: dict[int, int | None] = {}
        self._by_ref: dict[str, int] = {}
        self._accounts: dict[int, Account] = {}
        self._payers: dict[int, Account] = {}
        self._plans: dict[int, PlanRecord] = {}
        self._leaves: dict[tuple[str, str | None], Account] = {}
        self._campaigns: dict[tuple[int, str], int] = {}
        self._number_payers: dict[str, Account | None] = {}

    def account_id(self, conn: Connection, ref: str, *, under: int | None = None) -> int:
        ref = (ref or "").strip()
        if not ref:
            raise InvalidInput("the CDR names no account")
        cache_key = f"{under}:{ref}"
        if cache_key in self._by_ref:
            return self._by_ref[cache_key]
        if ref.isdigit():
            found = load_account(conn, int(ref)).id
        else:
            ids = [
                int(i)
                for i in conn.execute(select(accounts.c.id).where(accounts.c.name == ref)).scalars()
            ]
            if len(ids) > 1 and under is not None:
                ids = [i for i in ids if self._is_under(conn, i, under)]
            if not ids:
                raise NotFound(f"no account named {ref!r}")
            if len(ids) > 1:
                raise InvalidInput(f"account name {ref!r} is ambiguous: use its id")
            found = ids[0]
        self._by_ref[cache_key] = found
        return found

    def _is_under(self, conn: Connection, account_id: int, ancestor: int) -> bool:
        current: int | None = account_id
        while current is not None:
            if current == ancestor:
                return True
            current = load_account(conn, current).parent_id
        return False

    def leaf(self, conn: Connection, event: UsageEvent) -> Account:
        return self.leaf_of(conn, event.account, event.user)

    def leaf_of(self, conn: Connection, account: str, user: str | None) -> Account:
        """The leaf account named by a CDR's account and user (TelbillError if unknown)."""
        found = self._leaves.get((account, user))
        if found is None:
            found = self._leaves[(account, user)] = self._leaf(conn, account, user)
        return found

    def _leaf(self, conn: Connection, account: str, user: str | None) -> Account:
        account_id = self.account_id(conn, account)
        if user:
            account_id = self.account_id(conn, user, under=account_id)
        if account_id not in self._accounts:
            if self.within is not None and not self._is_under(conn, account_id, self.within):
                raise NotFound(f"account {account_id} not found")
            self._accounts[account_id] = load_account(conn, account_id)
            self._payers[account_id] = billing_account(conn, account_id)
            self._plans[account_id] = plan_for(conn, account_id)
        return self._accounts[account_id]

    def campaign_id(self, conn: Connection, leaf: Account, ref: str) -> int:
        """Id of campaign `ref` (its id, or its name) run by `leaf` or an account above it
        up to the wallet that pays (NotFound otherwise)."""
        cache_key = (leaf.id, ref)
        found = self._campaigns.get(cache_key)
        if found is not None:
            return found
        payer = self._payers[leaf.id]
        chain = [leaf.id]
        current = leaf
        while current.id != payer.id and current.parent_id is not None:
            current = load_account(conn, current.parent_id)
            chain.append(current.id)
        query = select(campaigns.c.id).where(campaigns.c.account_id.in_(chain))
        if ref.isdigit():
            query = query.where(campaigns.c.id == int(ref))
        else:
            query = query.where(campaigns.c.name == ref).order_by(campaigns.c.id.desc())
        found = conn.execute(query.limit(1)).scalar()
        if found is None:
            raise NotFound(f"no campaign {ref!r} of account {leaf.id}")
        self._campaigns[cache_key] = int(found)
        return int(found)

    def payer(self, account_id: int) -> Account:
        return self._payers[account_id]

    def number_payer(self, conn: Connection, number: str) -> Account | None:
        """The wallet of the account renting `number` (None: not ours, or outside `within`),
        remembered for this posting run (`services.number_payers`)."""
        if number not in self._number_payers:
            self._number_payers[number] = number_owner_payer(conn, number, within=self.within)
        return self._number_payers[number]

    def plan(self, account_id: int) -> PlanRecord:
        return self._plans[account_id]


def _reason(exc: TelbillError) -> str:
    return f"{exc.code}: {exc.message}"


# ---------------------------------------------------------------------------- rating


def _rate_chunk(
    db: Database,
    records: Sequence[UsageEvent | RowError],
    cache: TariffCache,
    resolver: AccountResolver,
) -> tuple[list[_Rated], list[Bad]]:
    bad: list[Bad] = []
    found: list[tuple[UsageEvent, Account]] = []
    campaign_of: list[int | None] = []  # per found record
    with db.engine.connect() as conn:
        for record in records:
            if isinstance(record, RowError):
                where = f"{record.source}: " if record.source else ""
                raw = getattr(record, "raw", None) or {}  # CDR readers keep the row's columns
                bad.append(Bad(record.line, None, f"invalid_input: {where}{record.reason}", raw))
                continue
            try:
                leaf = resolver.leaf(conn, record)
                campaign_id = (
                    resolver.campaign_id(conn, leaf, record.campaign) if record.campaign else None
                )
                found.append((record, leaf))
                campaign_of.append(campaign_id)
            except TelbillError as exc:
                bad.append(Bad(record.line, record.id, _reason(exc), usage_json(record)))
        conn.rollback()
    # Plain outbound calls go through the numpy batch rater, grouped by tariff version and
    # plan; what it does not price on its fast path is rated one by one with `rate_event`.
    legs: list[list[_Leg] | None] = [None] * len(found)
    versions: list[int | None] = [None] * len(found)
    groups: dict[tuple[TariffRef, int, int], list[int]] = {}
    voice, outbound = Service.VOICE, Direction.OUTBOUND
    for position, (event, leaf) in enumerate(found):
        plan = resolver.plan(leaf.id)
        try:
            version = versions[position] = cache.version_at(plan.tariff_ref, event.start)
        except TelbillError:
            continue  # reported by the per-event path
        if event.service is voice and event.direction is outbound:
            groups.setdefault((plan.tariff_ref, version, plan.id), []).append(position)
    chunk_columns = _ChunkColumns([event for event, _ in found])
    for (tariff, version, _), members in groups.items():
        plan = resolver.plan(found[members[0]][1].id)
        rater = cache.batch_rater(tariff, version, plan, voice, outbound)
        columns, batched, _rest = chunk_columns.from_events([found[m][0] for m in members])
        if columns is None:
            continue
        _batch_legs(rater, columns, batched, members, legs)
    priced_events: list[tuple[int, list[_Leg], str, bool]] = []
    for position, (event, leaf) in enumerate(found):
        try:
            plan = resolver.plan(leaf.id)
            known = versions[position]
            index = (
                cache.at(plan.tariff_ref, event.start)
                if known is None
                else cache.index(plan.tariff_ref, known)
            )
            priced = legs[position]
            owner_pays = False
            if priced is None:
                result_ = rate_event(event, index, plan.plan, labels=False)
                priced = [_Leg.of(charge) for charge in result_.charges]
                owner_pays = any(c.payer is Payer.NUMBER_OWNER for c in result_.charges)
        except TelbillError as exc:
            bad.append(Bad(event.line, event.id, _reason(exc), usage_json(event), leaf.id))
            continue
        priced_events.append((position, priced, index.currency, owner_pays))
    owners = _number_owners(db, resolver, [found[p][0] for p, _, _, pays in priced_events if pays])
    rated: list[_Rated] = []
    for position, priced, currency, owner_pays in priced_events:
        event, leaf = found[position]
        plan = resolver.plan(leaf.id)
        owner = owners.get(event.to_number) if owner_pays else None
        payer = owner if owner is not None else resolver.payer(leaf.id)
        if currency != payer.currency:
            mismatch = InvalidInput(
                f"tariff {plan.tariff!r} is in {currency}, "
                f"the wallet of account {payer.id} in {payer.currency}"
            )
            bad.append(Bad(event.line, event.id, _reason(mismatch), usage_json(event), leaf.id))
            continue
        text = usage_text(event)
        rated.append(
            _Rated(
                event, leaf, payer, plan, priced, text, usage_hash(text),
                campaign_of[position],
            )
        )  # fmt: skip
    _record_costs(cache, rated, chunk_columns)
    return rated, bad


class _ChunkColumns:
    """The batch columns of a chunk's plain outbound calls, built in one pass
    (`CdrColumns.from_events`) and handed out, group by group, to the price and the cost
    raters: a drop-in for `CdrColumns` as `leg_cost_micros` calls it."""

    def __init__(self, events: Sequence[UsageEvent]) -> None:
        voice, outbound = Service.VOICE, Direction.OUTBOUND
        calls = [e for e in events if e.service is voice and e.direction is outbound]
        self._columns, batched, _rest = CdrColumns.from_events(calls)
        # Keyed by identity: the chunk's events outlive every rater call of the chunk.
        self._column_of = {id(calls[position]): column for column, position in enumerate(batched)}

    def from_events(
        self, events: Sequence[UsageEvent]
    ) -> tuple[CdrColumns | None, list[int], list[int]]:
        """Like `CdrColumns.from_events` (voice, outbound), for events of this chunk."""
        batched: list[int] = []
        rest: list[int] = []
        at: list[int] = []
        column_of = self._column_of
        for position, event in enumerate(events):
            column = column_of.get(id(event))
            if column is None:
                rest.append(position)
            else:
                batched.append(position)
                at.append(column)
        return (self._columns.take(at) if batched else None), batched, rest


def _record_costs(cache: TariffCache, rated: Sequence[_Rated], columns: _ChunkColumns) -> None:
    """The carrier cost of every leg (margin), through the same batch/per-event split as
    the prices (`services.charge_costs`), from the columns the prices were rated from."""
    costed = [item for item in rated if item.legs and item.plan.plan.cost_tariff_name]
    requests = [
        CostRequest(
            item.event, item.plan.plan, item.legs[0].currency, item.legs, item.plan.scope
        )
        for item in costed
    ]
    costs = leg_cost_micros(cache, requests, columns=columns)
    for item, leg_costs in zip(costed, costs, strict=True):
        for leg, cost in zip(item.legs, leg_costs, strict=True):
            leg.cost_micros = cost


def _number_owners(
    db: Database, resolver: AccountResolver, events: Sequence[UsageEvent]
) -> dict[str, Account]:
    """The paying wallet of each called number whose owner pays (inbound toll-free calls),
    for the numbers rented in our inventory (`services.number_payers`)."""
    if not events:
        return {}
    found: dict[str, Account] = {}
    with db.engine.connect() as conn:
        for event in events:
            payer = resolver.number_payer(conn, event.to_number)
            if payer is not None:
                found[event.to_number] = payer
        conn.rollback()
    return found


def _batch_legs(
    rater: BatchRater,
    columns: CdrColumns,
    batched: Sequence[int],
    members: Sequence[int],
    legs: list[list[_Leg] | None],
) -> None:
    """Legs of the calls the batch rater priced exactly (the rest stay None)."""
    index = rater.index
    result = rater.rate(columns)
    costs, billed = result.cost_micros.tolist(), result.billed_s.tolist()
    rows, status = result.row.tolist(), result.status.tolist()
    prefixes = [row.prefix for row in index.tariff.rows]
    ok = BatchStatus.OK
    call, voice, outbound = Leg.CALL.value, Service.VOICE.value, Direction.OUTBOUND.value
    currency, name, version = index.currency, index.name, index.version
    for column, member in enumerate(batched):
        row = rows[column]
        if status[column] != ok or row < 0:
            continue  # errors and rowless results: rate_event gives the exact answer
        legs[members[member]] = [
            _Leg(
                call, voice, outbound, costs[column], currency, CALL_TIME, billed[column],
                name, version, prefixes[row],
            )
        ]  # fmt: skip


# ---------------------------------------------------------------------------- posting


def provider_of(
    conn: Connection, account_id: int, known: dict[int, int | None] | None = None
) -> int | None:
    """The tenant of `account_id`: its top-level provider (`accounts.provider_id`)."""
    known = {} if known is None else known
    if account_id not in known:
        found = conn.execute(
            select(accounts.c.provider_id).where(accounts.c.id == account_id)
        ).scalar()
        known[account_id] = None if found is None else int(found)
    return known[account_id]


def _dedupe_key(source: str, item: Bad, owner: int | None) -> str:
    """Source + line + content, and the owner: the same bad row posted by two tenants is
    quarantined for each (a row without an owner keeps the key it always had)."""
    key: dict[str, Any] = {"s": source, "l": item.line, "r": dict(item.raw)}
    if owner is not None:
        key["o"] = owner
    return _hash(key)


def quarantine_rows(
    conn: Connection,
    bad: Sequence[Bad],
    *,
    source: str,
    now: datetime,
    poster: int | None = None,
    providers: dict[int, int | None] | None = None,
) -> int:
    """Store bad records (once per source, line and content); returns how many were new.

    Each row is owned by a tenant: `account_id` is the account that made the usage when it
    is known, else the poster's account (`poster`); `provider_id` is that account's
    top-level provider. A row with neither (posted by the platform's CLI, account unknown)
    is seen by the platform admin only."""
    if not bad:
        return 0
    providers = {} if providers is None else providers
    rows = [
        {
            "account_id": (owner := item.account_id if item.account_id is not None else poster),
            "provider_id": None if owner is None else provider_of(conn, owner, providers),
            "source": printable(source[:200]),
            "line": item.line,
            "cdr_id": None if item.cdr_id is None else printable(item.cdr_id[:200]),
            "reason": printable_value(item.reason, MAX_QUARANTINED_TEXT),
            # What cannot be stored or encoded (NUL, a lone surrogate) is kept as an escape;
            # a huge column is cut (the reason says why the row was refused).
            "raw": printable_value(dict(item.raw), MAX_QUARANTINED_TEXT),
            "status": "open",
            "dedupe_key": _dedupe_key(source, item, owner),
            "created_at": now,
            "updated_at": now,
        }
        for item in bad
    ]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(cdr_quarantine).on_conflict_do_nothing(index_elements=["dedupe_key"])
    conn.execute(statement, rows)
    return len(rows)


def _existing(conn: Connection, rated: Sequence[_Rated]) -> dict[tuple[int, str], str | None]:
    """Usage hashes of the CDRs already charged, by (leaf account, CDR id).

    One lookup for the whole chunk, whatever the number of leaf accounts, each pair one
    probe of the unique (account, CDR id, leg, revision) index (`charged.charged_pairs`):
    the cost stays per CDR of the chunk, not per account nor per charge stored.
    """
    return charged_pairs(conn, ((item.leaf.id, item.event.id) for item in rated))


def _package_note(
    explanation: dict[str, Any], package_units: int, unit: str, due: int, currency: str
) -> dict[str, Any]:
    if package_units:
        explanation["package_units"] = package_units
        explanation["text"] += (
            f"\n  {package_units} {unit} taken from packages; "
            f"money charged {from_micros(due)} {currency}"
        )
    return explanation


# A leg priced by the batch rater stores this instead of its full explanation; `get_charge`
# derives the explanation (same JSON, same text) from the usage, tariff version and plan.
DERIVED = "derived"

CHARGE_COLUMNS = (
    "cdr_id", "leg", "revision", "account_id", "payer_id", "service", "direction",
    "amount_micros", "currency", "unit", "billed_units", "package_units", "tariff",
    "tariff_version", "prefix", "explanation", "usage", "usage_hash", "transaction_id",
    "source", "occurred_at", "created_at", "campaign_id", "cost_micros",
)  # fmt: skip


def _fresh(
    rated: Sequence[_Rated], existing: dict[tuple[int, str], str | None], summary: PostSummary
) -> tuple[list[_Rated], list[Bad]]:
    """The records not charged yet; counts duplicates, refuses a reused CDR id."""
    fresh: list[_Rated] = []
    refused: list[Bad] = []
    for item in rated:
        key = (item.leaf.id, item.event.id)
        if key in existing:
            if existing[key] == item.usage_hash:
                summary.duplicates += 1
            else:
                summary.refused += 1
                refused.append(
                    Bad(
                        item.event.line,
                        item.event.id,
                        "idempotency_key_reused: CDR id already charged with different content",
                        item.usage,
                        item.leaf.id,
                    )
                )
            continue
        existing[key] = item.usage_hash
        fresh.append(item)
    return fresh, refused


def post_rated_in(
    conn: Connection,
    rated: Sequence[_Rated],
    *,
    now: datetime,
    source: str,
    fast: RatedColumns | None = None,
) -> tuple[PostSummary, list[Bad]]:
    """Post rated events (and `fast`: calls rated from columns, `charging_columns`) in the
    caller's transaction (see module rules), in line order.

    The payers' buckets are locked before the charged CDR ids are read, so a worker that
    waited for another one posting the same CDRs sees its charges and counts duplicates.
    """
    summary = PostSummary()
    fast_count = 0 if fast is None else len(fast)
    if not rated and not fast_count:
        return summary, []
    payers = {item.payer.id: item.payer for item in rated}
    if fast is not None:
        payers.update(fast.payers)
    locked = ledger_store.load_buckets(conn, set(payers))
    fresh, fast_fresh, refused = _fresh_in_order(conn, rated, fast, summary)
    source = source[:200]
    legs = [(item, leg) for item in fresh for leg in item.legs]
    table, slow_at, fast_at = _leg_table(legs, fast, fast_fresh, payers)
    batch = post_usage_legs(conn, table, now=now, source=source, locked=locked)
    assert batch.due_micros is not None and batch.package_units is not None
    assert batch.transaction is not None
    timestamp = timestamp_param(conn)
    created_at = timestamp(now)
    derived: dict[int, str] = {}
    rows: list[tuple[Any, ...]] = []
    charged: dict[str, int] = {}
    for (item, leg), at in zip(legs, slow_at.tolist(), strict=True):
        due, package_units = int(batch.due_micros[at]), int(batch.package_units[at])
        transaction_id = int(batch.transaction[at])
        if leg.charge is not None:
            explanation = json_text(
                _package_note(
                    explanation_json(leg.charge), package_units, leg.unit, due, leg.currency
                )
            )
        else:
            explanation = derived.get(item.plan.id) or derived.setdefault(
                item.plan.id, json_text({DERIVED: 1, "plan_id": item.plan.id})
            )
        rows.append(
            (
                item.event.id, leg.leg, 0, item.leaf.id, item.payer.id, leg.service,
                leg.direction, due, leg.currency, leg.unit, leg.billed_units, package_units,
                leg.tariff, leg.tariff_version, leg.prefix, explanation,
                item.usage_text if leg is item.legs[0] else None, item.usage_hash,
                None if transaction_id < 0 else transaction_id, source,
                timestamp(item.event.start), created_at, item.campaign_id, leg.cost_micros,
            )
        )  # fmt: skip
        charged[leg.currency] = charged.get(leg.currency, 0) + due
    bulk.insert_rows(conn, charges, CHARGE_COLUMNS, rows)
    traffic = _our_side_numbers(fresh)
    if fast is not None and fast_at.shape[0]:
        posted = fast.take(fast_fresh)
        due = batch.due_micros[fast_at]
        for plan_id in np.unique(posted.plan_id).tolist():
            derived.setdefault(int(plan_id), json_text({DERIVED: 1, "plan_id": int(plan_id)}))
        write_fast_charges(
            conn, posted, due, batch.transaction[fast_at], source=source, now=now,
            explanation_of_plan=derived,
        )  # fmt: skip
        for currency, amount in zip(posted.currency.to_pylist(), due.tolist(), strict=True):
            charged[currency] = charged.get(currency, 0) + amount
        traffic |= traffic_numbers(fast, fast_fresh)
    for currency, micros in charged.items():
        summary.charged[currency] = from_micros(micros)
    summary.posted = len(fresh) + int(fast_at.shape[0])
    _announce_emptied_packages(conn, batch, now)
    numbers.record_traffic_in(conn, traffic, now)
    moved = {item.payer.id: item.payer for item in fresh}
    if fast is not None and fast_at.shape[0]:
        for payer_id in np.unique(fast.payer_id[fast_fresh]).tolist():
            moved[int(payer_id)] = fast.payers[int(payer_id)]
    _after_charges(conn, moved, locked, batch.taken, now)
    return summary, refused


def _fresh_in_order(
    conn: Connection, rated: Sequence[_Rated], fast: RatedColumns | None, summary: PostSummary
) -> tuple[list[_Rated], npt.NDArray[np.bool_], list[Bad]]:
    """The records not charged yet (rated ones, and a mask of the fast rows), in line
    order; counts duplicates, refuses a reused CDR id (`_fresh`, over both kinds)."""
    fast_count = 0 if fast is None else len(fast)
    fast_keys: list[tuple[int, str]] = []
    if fast is not None:
        fast_keys = list(zip(fast.leaf_id.tolist(), fast.cdr_id.to_pylist(), strict=True))
    slow_keys = [(item.leaf.id, item.event.id) for item in rated]
    existing = charged_pairs(conn, [*slow_keys, *fast_keys])
    fast_fresh = np.ones(fast_count, dtype=np.bool_)
    if fast is None or (not existing and len(set(fast_keys)) == fast_count and not rated):
        fresh, refused = _fresh(rated, existing, summary)
        return fresh, fast_fresh, refused
    assert fast is not None
    order = sorted(
        [(item.event.line or 0, 0, k) for k, item in enumerate(rated)]
        + [(line, 1, k) for k, line in enumerate(fast.line.tolist())]
    )
    fresh: list[_Rated] = []
    refused: list[Bad] = []
    for _, kind, k in order:
        if kind == 0:
            item = rated[k]
            key, hashed = (item.leaf.id, item.event.id), item.usage_hash
        else:
            key, hashed = fast_keys[k], fast.usage_hash[k]
        if key in existing:
            if kind == 1:
                fast_fresh[k] = False
            if existing[key] == hashed:
                summary.duplicates += 1
                continue
            summary.refused += 1
            line = rated[k].event.line if kind == 0 else int(fast.line[k])
            usage = rated[k].usage if kind == 0 else json.loads(fast.usage_text[k].as_py())
            refused.append(
                Bad(line, key[1],
                    "idempotency_key_reused: CDR id already charged with different content",
                    usage, key[0])
            )  # fmt: skip
            continue
        existing[key] = hashed
        if kind == 0:
            fresh.append(rated[k])
    return fresh, fast_fresh, refused


_FAST_KIND = (Service.VOICE.value, Direction.OUTBOUND.value, CALL_TIME)


def _leg_table(
    legs: Sequence[tuple[_Rated, _Leg]],
    fast: RatedColumns | None,
    fast_fresh: npt.NDArray[np.bool_],
    payers: dict[int, Account],
) -> tuple[UsageLegTable, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """All legs of the chunk as one table in line order (legs of one CDR together), with
    the position of each rated leg and of each new fast call in it."""
    slow = UsageLegTable.of_legs(
        [
            UsageLeg(
                item.payer, item.leaf.id, item.event.id, leg.service, leg.direction,
                leg.unit, leg.billed_units, leg.amount_micros,
            )
            for item, leg in legs
        ]
    )  # fmt: skip
    slow_lines = np.array([item.event.line or 0 for item, _ in legs], dtype=np.int64)
    if fast is None or not np.any(fast_fresh):
        slow.payers = payers
        return slow, np.arange(len(legs), dtype=np.int64), np.zeros(0, dtype=np.int64)
    kinds = list(slow.kinds)
    if _FAST_KIND not in kinds:
        kinds.append(_FAST_KIND)
    fast_kind = kinds.index(_FAST_KIND)
    count = int(fast_fresh.sum())
    lines = np.concatenate([slow_lines, fast.line[fast_fresh]])
    order = np.lexsort((np.arange(lines.shape[0]), lines))
    position = np.empty_like(order)
    position[order] = np.arange(order.shape[0])
    cdr_offset = int(slow.cdr.max()) + 1 if len(legs) else 0

    def merged(slow_values: npt.NDArray[np.int64], fast_values: Any) -> Any:
        return np.concatenate([slow_values, np.asarray(fast_values, dtype=np.int64)])[order]

    table = UsageLegTable(
        merged(slow.payer_id, fast.payer_id[fast_fresh]),
        merged(slow.subject_id, fast.leaf_id[fast_fresh]),
        merged(slow.cdr, np.arange(count) + cdr_offset),
        merged(slow.kind, np.full(count, fast_kind)),
        merged(slow.billed_units, fast.billed_s[fast_fresh]),
        merged(slow.amount_micros, fast.amount_micros[fast_fresh]),
        kinds,
        payers,
    )
    return table, position[: len(legs)], position[len(legs) :]


def _after_charges(
    conn: Connection,
    payers: Mapping[int, Account],
    locked: Sequence[Bucket],
    taken: dict[int, int],
    now: datetime,
) -> None:
    """The zero-balance rules and the fixed threshold levels of the chunk's payers, in the
    order `enforce_zero_balance` takes them. The money after the chunk is known from the
    locked buckets and what the drain took (no other change of them in this transaction).
    Set-based: one read tells which payers above zero have their fixed levels settled
    (the hook would write nothing); only the others are evaluated, one by one; a payer at
    or below zero gets the full rules."""
    owned: dict[int | None, list[Bucket]] = {}
    for bucket in locked:
        owned.setdefault(bucket.account_id, []).append(bucket)
    after = {
        payer_id: money_after(owned.get(payer_id, []), taken, payer.currency, now)
        for payer_id, payer in payers.items()
    }
    above = {p: from_micros(available) for p, (balance, available) in after.items() if balance > 0}
    settled = thresholds.fixed_levels_settled_many(conn, above)
    for payer_id in sorted(payers):
        if after[payer_id][0] <= 0:
            enforce_zero_balance(conn, [payer_id], now)
        elif payer_id not in settled:
            thresholds.after_balance_change(
                conn, payer_id, now, payer=payers[payer_id], available=above[payer_id]
            )


_E164: dict[str, str | None] = {}


def _our_side_numbers(fresh: Sequence[_Rated]) -> set[str]:
    """E.164 numbers on our side of the calls (inbound: the called number; outbound: the
    caller id), for the idle-release rule of rented numbers (`numbers.record_traffic`)."""
    found: set[str] = set()
    for item in fresh:
        event = item.event
        number = event.to_number if event.direction is Direction.INBOUND else event.from_number
        if not number:
            continue
        e164 = _our_side_number(number)
        if e164 is not None:
            found.add(e164)
    return found


def _our_side_number(number: str) -> str | None:
    e164 = _E164.get(number, "")
    if e164 == "":
        try:
            e164 = normalize_number(number)
        except TelbillError:
            e164 = None
        if len(_E164) < 100_000:  # a process-wide cache of bounded size
            _E164[number] = e164
    return e164


def _announce_emptied_packages(conn: Connection, batch: UsageBatch, now: datetime) -> None:
    """``package.exhausted`` for each package bucket the batch used up (once per emptying
    transaction; expiry announces its own)."""
    for bucket, tx_id in batch.emptied_packages():
        purchase_id = conn.execute(
            select(package_purchases.c.id).where(package_purchases.c.bucket_id == bucket.id)
        ).scalar()
        emit(
            conn,
            "package.exhausted",
            account_id=bucket.account_id,
            payload={
                "bucket_id": bucket.id, "purchase_id": purchase_id, "unit": bucket.unit,
                "reason": "used_up", "transaction_id": tx_id,
            },  # fmt: skip
            dedupe_key=f"package.exhausted:bucket:{bucket.id}:{tx_id}",
            now=now,
        )


def post_chunk(
    db: Database,
    records: Sequence[UsageEvent | RowError],
    *,
    cache: TariffCache,
    clock: Clock,
    source: str,
    resolver: AccountResolver | None = None,
    columns: CdrBlock | None = None,
    reader: NativeColumnsReader | None = None,
) -> PostSummary:
    """Rate and post one chunk of records in one transaction (retried whole on conflict).

    `columns`: the chunk's rows read as columns by `reader` (`charging_columns`); those it
    cannot price from columns are read per row and posted with `records`, in line order."""
    resolver = resolver or AccountResolver()
    fast = None
    if columns is not None and len(columns):
        assert reader is not None
        fast, moved = rate_columns(db, columns, cache, resolver)
        if moved.shape[0]:
            more = reader.slow_records(columns.text_of(moved), [])
            records = sorted([*records, *more], key=lambda record: record.line or 0)
    rated, bad = _rate_chunk(db, records, cache, resolver)

    def work(conn: Connection) -> PostSummary:
        now = clock.now()
        summary, refused = post_rated_in(conn, rated, now=now, source=source, fast=fast)
        summary.quarantined = quarantine_rows(
            conn, [*bad, *refused], source=source, now=now, poster=resolver.poster,
            providers=resolver.providers,
        )  # fmt: skip
        summary.quarantined -= len(refused)
        summary.problems = [
            {"line": item.line, "cdr_id": None if item.cdr_id is None else printable(item.cdr_id),
             "reason": printable_value(item.reason, MAX_QUARANTINED_TEXT)}
            for item in sorted([*bad, *refused], key=lambda item: item.line or 0)[:MAX_PROBLEMS]
        ]  # fmt: skip
        summary.records = len(records) + (0 if fast is None else len(fast))
        return summary

    return db.run(work)


def post_cdrs(
    db: Database,
    events: Iterable[UsageEvent | RowError],
    *,
    clock: Clock,
    source: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    cache: TariffCache | None = None,
    on_chunk: Callable[[PostSummary], None] | None = None,
    within: int | None = None,
    poster: int | None = None,
) -> PostSummary:
    """Rate and post a stream of CDR records, `chunk_size` per transaction (module rules).

    Returns the totals: ``posted`` (CDRs newly charged), ``duplicates`` (already charged),
    ``quarantined`` (bad rows), ``refused`` (the ledger refused the charge; quarantined too).
    `within`: only accounts of this subtree may be charged (others are quarantined).
    `poster`: the account posting (default `within`): the tenant of quarantined rows whose
    account is unknown (`quarantine_rows`).
    """
    if chunk_size < 1:
        raise InvalidInput("chunk_size must be at least 1")
    with _fewer_collections():
        return _post_all(db, events, clock=clock, source=source, chunk_size=chunk_size,
                         cache=cache or TariffCache(db), on_chunk=on_chunk,
                         resolver=AccountResolver(within, poster=poster))  # fmt: skip


# Allocations between two young-generation garbage collections while CDRs post.
_GC_YOUNG_THRESHOLD = 100_000
_gc_lock = threading.Lock()
_gc_posting = 0  # streams posting now in this process (threads of an API server)
_gc_saved: tuple[int, ...] = ()


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect garbage less often while a stream posts.

    A chunk allocates several objects per CDR (fields, events, rows), nearly all freed by
    reference counting; at Python's default threshold (700 net allocations) the collector
    runs every few dozen CDRs, and its full passes walk every live object (tariff indexes,
    caches): about a fifth of the posting's CPU. The process's thresholds are restored when the last
    concurrent stream ends.
    """
    global _gc_posting, _gc_saved
    with _gc_lock:
        if _gc_posting == 0:
            _gc_saved = gc.get_threshold()
            young, *older = _gc_saved
            gc.set_threshold(max(young, _GC_YOUNG_THRESHOLD), *older)
        _gc_posting += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_posting -= 1
            if _gc_posting == 0:
                gc.set_threshold(*_gc_saved)


def _post_all(
    db: Database,
    events: Iterable[UsageEvent | RowError],
    *,
    clock: Clock,
    source: str,
    chunk_size: int,
    cache: TariffCache,
    on_chunk: Callable[[PostSummary], None] | None,
    resolver: AccountResolver,
) -> PostSummary:
    total = PostSummary()
    chunk: list[UsageEvent | RowError] = []

    def flush() -> None:
        result = post_chunk(
            db, chunk, cache=cache, clock=clock, source=source, resolver=resolver
        )
        total.add(result)
        if on_chunk is not None:
            on_chunk(result)
        chunk.clear()

    for record in events:
        chunk.append(record)
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return total


# ---------------------------------------------------------------------------- quarantine


@dataclass(frozen=True, slots=True)
class QuarantinedCdr:
    id: int
    source: str
    line: int | None
    cdr_id: str | None
    reason: str
    raw: dict[str, Any]
    status: str
    created_at: datetime
    account_id: int | None = None
    provider_id: int | None = None


def _quarantined(row: Any) -> QuarantinedCdr:
    # printable: a row stored before the rules of `quarantine_rows` may hold a lone surrogate
    # in its JSON (issue 15 finding 4: it broke the listing for good).
    return QuarantinedCdr(
        id=row.id, source=row.source, line=row.line, cdr_id=row.cdr_id, reason=row.reason,
        raw=printable_value(dict(row.raw)), status=row.status, created_at=row.created_at,
        account_id=row.account_id, provider_id=row.provider_id,
    )  # fmt: skip


class _Viewer:
    """Which quarantined rows a tenant sees: those whose account (else whose provider) is
    `account_id` or under it. `account_id` None: the platform admin, who sees every row."""

    def __init__(self, conn: Connection, account_id: int | None) -> None:
        self.account_id = account_id
        self._parents: dict[int, int | None] = {}
        # Only rows of the viewer's top-level provider may be visible to it.
        self.provider_id = None if account_id is None else provider_of(conn, account_id)

    def _under(self, conn: Connection, account_id: int) -> bool:
        assert self.account_id is not None
        current: int | None = account_id
        for _ in range(64):
            if current is None:
                return False
            if current == self.account_id:
                return True
            if current not in self._parents:
                self._parents[current] = conn.execute(
                    select(accounts.c.parent_id).where(accounts.c.id == current)
                ).scalar()
            current = self._parents[current]
        return False

    def sees(self, conn: Connection, row: Any) -> bool:
        if self.account_id is None:
            return True
        owner = row.account_id if row.account_id is not None else row.provider_id
        return owner is not None and self._under(conn, int(owner))

    def restrict(self, query: Any) -> Any:
        """`query` limited (in SQL) to rows of the providers this viewer may see."""
        if self.account_id is None:
            return query
        return query.where(cdr_quarantine.c.provider_id == self.provider_id)


def list_quarantine(
    db: Database,
    *,
    status: str | None = "open",
    limit: int = 100,
    after_id: int = 0,
    viewer: int | None = None,
) -> list[QuarantinedCdr]:
    """Quarantined rows in id order (by default the open ones) that `viewer` may see: rows of
    its subtree (`_Viewer`); every row when `viewer` is None (the platform admin)."""
    found: list[QuarantinedCdr] = []
    with db.read() as conn:
        seen = _Viewer(conn, viewer)
        while len(found) < limit:
            query = seen.restrict(
                select(cdr_quarantine)
                .where(cdr_quarantine.c.id > after_id)
                .order_by(cdr_quarantine.c.id)
                .limit(limit)
            )
            if status is not None:
                query = query.where(cdr_quarantine.c.status == status)
            rows = conn.execute(query).all()
            found.extend(_quarantined(r) for r in rows if seen.sees(conn, r))
            if len(rows) < limit:
                break
            after_id = rows[-1].id
    return found[:limit]


def repost_quarantined(
    db: Database,
    quarantine_id: int,
    *,
    clock: Clock,
    fixed: Mapping[str, Any] | None = None,
    cache: TariffCache | None = None,
    viewer: int | None = None,
) -> PostSummary:
    """Post a quarantined row again, optionally with corrected fields (usage JSON keys).

    Only rows kept as usage (they were read but could not be rated or charged) can be
    reposted; an unreadable line is fixed in the file and the file posted again. On
    success the row's status becomes ``reposted``.

    `viewer`: the tenant reposting (None: the platform admin). A row it may not see
    (`list_quarantine`) is NotFound, and the repost charges only accounts of its subtree.
    """
    with db.read() as conn:
        row = conn.execute(
            select(cdr_quarantine).where(cdr_quarantine.c.id == quarantine_id)
        ).first()
        if row is not None and not _Viewer(conn, viewer).sees(conn, row):
            row = None
    if row is None:
        raise NotFound(f"quarantined CDR {quarantine_id} not found")
    if row.status == "reposted":
        return PostSummary(records=1, duplicates=1)
    _check_fixes(fixed or {})
    raw = {**dict(row.raw), **_typed_fixes(fixed or {})}
    if "start" not in raw or "to" not in raw or "service" not in raw:
        raise InvalidInput(
            f"quarantined row {quarantine_id} was not readable: fix line {row.line} "
            f"of {row.source} and post the file again"
        )
    try:
        event = usage_from_json(raw)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InvalidInput(f"quarantined row {quarantine_id}: bad usage field: {exc}") from None
    cache = cache or TariffCache(db)
    resolver = AccountResolver(viewer)
    rated, bad = _rate_chunk(db, [event], cache, resolver)
    if bad:
        raise InvalidInput(f"still refused: {bad[0].reason}")

    def work(conn: Connection) -> PostSummary:
        now = clock.now()
        summary, refused = post_rated_in(conn, rated, now=now, source=row.source)
        if refused:
            raise InvalidInput(f"still refused: {refused[0].reason}")
        conn.execute(
            update(cdr_quarantine)
            .where(cdr_quarantine.c.id == quarantine_id)
            .values(status="reposted", raw=raw, updated_at=now)
        )
        summary.records = 1
        return summary

    return db.run(work)


# The fields a repost may correct (keys of `usage_json`), text or whole numbers.
_TEXT_FIELDS = frozenset(
    {
        "id", "account", "user", "service", "direction", "from", "to", "start", "answer",
        "end", "text", "call_class", "campaign",
    }
)  # fmt: skip
_NUMBER_FIELDS = frozenset({"duration_s", "segments", "speech_s"})


def _typed_fixes(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """`fixed` with numeric fields given as text (the CLI's --set) made whole numbers."""
    return {
        name: int(value) if name in _NUMBER_FIELDS and isinstance(value, str) else value
        for name, value in fixed.items()
    }


def _check_fixes(fixed: Mapping[str, Any]) -> None:
    """Corrections name known usage fields with values of their type (InvalidInput)."""
    unknown = set(fixed) - _TEXT_FIELDS - _NUMBER_FIELDS
    if unknown:
        raise InvalidInput(f"unknown usage field(s): {', '.join(sorted(unknown))}")
    for name, value in fixed.items():
        if value is None:
            continue
        if name in _NUMBER_FIELDS and isinstance(value, str) and value.strip().isdigit():
            continue  # the CLI's --set gives text
        wanted = str if name in _TEXT_FIELDS else int
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise InvalidInput(f"{name}: expected {'text' if wanted is str else 'a number'}")


def run_once(
    db: Database,
    *,
    scope: str,
    key: str,
    request: Mapping[str, Any],
    compute: Callable[[], dict[str, Any]],
    clock: Clock,
) -> dict[str, Any]:
    """The stored response of (`scope`, `key`), else `compute()` stored under it.

    For requests made of several transactions (a CDR batch): each part is idempotent by
    itself, so computing twice after a crash converges; the key returns the first answer.
    """
    hashed = idempotency.request_hash(request)
    with db.transaction() as conn:
        stored = idempotency.check(conn, scope, idempotency.validate_key(key), hashed)
    if stored is not None:
        return stored
    response = compute()

    def remember(conn: Connection) -> dict[str, Any]:
        again = idempotency.check(conn, scope, key, hashed)
        if again is not None:
            return again
        idempotency.remember(conn, scope, key, hashed, response, clock.now())
        return response

    return db.run(remember)


# ---------------------------------------------------------------------------- explain


@dataclass(frozen=True, slots=True)
class ChargeView:
    id: int
    cdr_id: str
    leg: str
    revision: int
    account_id: int
    payer_id: int
    service: str
    direction: str
    amount: Decimal
    currency: str
    unit: str
    billed_units: int
    package_units: int
    tariff: str | None
    tariff_version: int | None
    prefix: str | None
    transaction_id: int | None
    occurred_at: datetime
    explanation: dict[str, Any]
    cost: Decimal | None = None  # the carrier's cost of the leg (None: unknown)
    campaign_id: int | None = None

    @property
    def text(self) -> str:
        return str(self.explanation.get("text", ""))


def charge_view(row: Any) -> ChargeView:
    return ChargeView(
        id=row.id,
        cdr_id=row.cdr_id,
        leg=row.leg,
        revision=row.revision,
        account_id=row.account_id,
        payer_id=row.payer_id,
        service=row.service,
        direction=row.direction,
        amount=from_micros(row.amount_micros),
        currency=row.currency,
        unit=row.unit,
        billed_units=row.billed_units,
        package_units=row.package_units,
        tariff=row.tariff,
        tariff_version=row.tariff_version,
        prefix=row.prefix,
        transaction_id=row.transaction_id,
        occurred_at=row.occurred_at,
        explanation=dict(row.explanation),
        cost=None if row.cost_micros is None else from_micros(row.cost_micros),
        campaign_id=row.campaign_id,
    )


def get_charge(db: Database, charge_id: int, *, cache: TariffCache | None = None) -> ChargeView:
    """One charge with its explanation (NotFound if there is none)."""
    with db.transaction() as conn:
        row = conn.execute(select(charges).where(charges.c.id == charge_id)).first()
        if row is None:
            raise NotFound(f"charge {charge_id} not found", charge_id=charge_id)
        view = charge_view(row)
        if not view.explanation.get(DERIVED):
            return view
        usage = row.usage
        if usage is None:
            usage = conn.execute(
                select(charges.c.usage).where(
                    charges.c.account_id == row.account_id, charges.c.cdr_id == row.cdr_id,
                    charges.c.revision == 0, charges.c.usage.is_not(None),
                )
            ).scalar_one()  # fmt: skip
        plan = get_plan_by_id(conn, int(view.explanation["plan_id"]))
        # The tariff it was rated with: its provider's own, else the operator's, as they
        # stood when the charge was made.
        provider = load_account(conn, row.account_id).provider_id
        owner = owner_at(conn, row.tariff, provider, row.created_at)
    # Outside the transaction: compiling the tariff reads it on its own connection.
    index = (cache or TariffCache(db)).index((owner, row.tariff), row.tariff_version)
    rated = rate_event(usage_from_json(usage), index, plan.plan, labels=False)
    charge = next(c for c in rated.charges if c.leg.value == row.leg)
    explanation = _package_note(
        explanation_json(charge), row.package_units, row.unit, row.amount_micros, row.currency
    )
    return dataclasses.replace(view, explanation=explanation)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AccountResolver",
    "ChargeView",
    "PostSummary",
    "QuarantinedCdr",
    "charge_view",
    "get_charge",
    "list_quarantine",
    "post_cdrs",
    "post_chunk",
    "post_rated_in",
    "quarantine_rows",
    "repost_quarantined",
    "run_once",
    "share_of",
    "usage_from_json",
    "usage_json",
]
