"""Wallet operations: top up, adjust, refund, grant credit, debit (one or a batch), balances,
history. Holds live in `telbill.services.holds` and are re-exported here.

Sign convention: every ledger account's balance is the sum of its postings. A wallet bucket's
positive balance is money (or units) the customer holds. System accounts are the other side:
``cash:<CUR>`` goes negative as customers pay in, ``revenue:<service>:<unit>`` goes positive
as usage is charged, ``promotions:<unit>`` goes negative as credit is given away.

VAT: a top-up amount is gross. VAT = gross * rate / (1 + rate), rounded half-up to micros,
from the paying account's VAT rate. The wallet receives the whole gross amount (what the
customer paid is what they can spend); the receipt records gross, VAT and net; and the same
transaction moves the VAT from ``vat_in_prepayments:<CUR>`` to ``vat_payable:<CUR>`` so the
VAT owed to the tax authority is visible in the ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from telbill.adapters.db import bulk, ledger_store
from telbill.adapters.db.engine import Database, RetryTransaction
from telbill.adapters.db.tables import accounts, idempotency_keys, ledger_accounts, receipts
from telbill.domain.money import (
    DECIMAL_CONTEXT,
    from_minor,
    is_money_unit,
    parse_amount,
    validate_unit,
)
from telbill.domain.tariffs import Direction
from telbill.errors import IdempotencyConflict, InsufficientBalance, InvalidInput, TelbillError
from telbill.ledger import (
    Bucket,
    BucketKind,
    DrainPlan,
    DrainPolicy,
    JournalEntry,
    Posting,
    Take,
    WalletDrain,
    drain_postings,
    transfer,
)
from telbill.services import idempotency
from telbill.services.accounts import PPM, Account, billing_account, find_accounts
from telbill.services.clock import Clock
from telbill.services.inputs import (
    check_currency,
    direction_name,
    minor_amount,
    paid_bucket,
    refuse_insufficient,
    service_name,
)
from telbill.services.ledger_views import (
    PostingView,
    Receipt,
    Transaction,
    load_receipt,
    load_transaction,
    load_transactions,
)

GRANT_KINDS = {
    BucketKind.TRIAL,
    BucketKind.FREE,
    BucketKind.INCOMING,
    BucketKind.OUTGOING,
    BucketKind.PACKAGE,
}
# Most restricted credit first: it can pay for less, so it should be used before the rest.
DEFAULT_PRIORITY = {
    BucketKind.PACKAGE: 10,
    BucketKind.INCOMING: 10,
    BucketKind.OUTGOING: 10,
    BucketKind.FREE: 20,
    BucketKind.TRIAL: 30,
}
MAX_PAGE = 500


def _replay_transaction(conn: Connection) -> Any:
    return lambda response: load_transaction(conn, int(response["transaction_id"]))


# ---------------------------------------------------------------------------- top-up


def vat_included(gross_micros: int, rate_ppm: int) -> int:
    """VAT contained in a gross amount: gross * rate / (1 + rate), half-up to micros."""
    with localcontext(DECIMAL_CONTEXT):
        vat = Decimal(gross_micros) * rate_ppm / (PPM + rate_ppm)
        return int(vat.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def top_up(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    idempotency_key: str,
    clock: Clock,
    currency: str | None = None,
    payment_ref: str | None = None,
    memo: str | None = None,
) -> Receipt:
    """Credit a payment of `amount` (gross, VAT included) to the paid balance; a receipt.

    The receipt number is sequential per provider (no gaps, no duplicates).
    """
    return db.run(
        lambda conn: top_up_in(
            conn, account_id, amount, idempotency_key=idempotency_key, now=clock.now(),
            currency=currency, payment_ref=payment_ref, memo=memo,
        )
    )  # fmt: skip


def top_up_in(
    conn: Connection,
    account_id: int,
    amount: Decimal | str | int,
    *,
    idempotency_key: str,
    now: datetime,
    currency: str | None = None,
    payment_ref: str | None = None,
    memo: str | None = None,
) -> Receipt:
    """`top_up` inside a transaction the caller already holds (several payments of a
    statement in one transaction, each its own ledger transaction and receipt)."""
    request = {
        "amount": parse_amount(amount),
        "currency": currency,
        "payment_ref": payment_ref,
        "memo": memo,
    }
    account = billing_account(conn, account_id)

    def perform() -> dict[str, Any]:
        check_currency(account, currency)
        gross = minor_amount(amount, account.currency)
        vat = vat_included(gross, int(account.vat_rate * PPM))
        # Lock the provider row: receipt numbers are allocated one at a time.
        conn.execute(
            select(accounts.c.id).where(accounts.c.id == account.provider_id).with_for_update()
        )
        buckets = ledger_store.load_buckets(conn, [account.id], unit=account.currency)
        paid = paid_bucket(buckets, account.currency)
        cash = ledger_store.system_account(
            conn, f"cash:{account.currency}", account.currency, now
        )
        post = [
            Posting(cash, -gross, account.currency),
            Posting(paid.id, gross, account.currency),
        ]
        if vat:
            vat_in = ledger_store.system_account(
                conn, f"vat_in_prepayments:{account.currency}", account.currency, now
            )
            vat_payable = ledger_store.system_account(
                conn, f"vat_payable:{account.currency}", account.currency, now
            )
            post += [
                Posting(vat_in, -vat, account.currency),
                Posting(vat_payable, vat, account.currency),
            ]
        details = {"vat_micros": vat, "payment_ref": payment_ref}
        tx_id = ledger_store.apply_entry(
            conn,
            JournalEntry(
                kind="top_up",
                account_id=account.id,
                subject_account_id=account_id,
                postings=tuple(post),
                memo=memo,
                details=details,
                idempotency_key=idempotency_key,
            ),
            now,
        )
        number = conn.execute(
            select(func.coalesce(func.max(receipts.c.number), 0) + 1).where(
                receipts.c.provider_id == account.provider_id
            )
        ).scalar_one()
        receipt_id = conn.execute(
            receipts.insert()
            .values(
                provider_id=account.provider_id,
                number=number,
                account_id=account.id,
                transaction_id=tx_id,
                currency=account.currency,
                gross_micros=gross,
                vat_micros=vat,
                net_micros=gross - vat,
                vat_rate_ppm=int(account.vat_rate * PPM),
                vat_country=account.vat_country,
                new_balance_micros=paid.balance + gross,
                payment_ref=payment_ref,
                created_at=now,
            )
            .returning(receipts.c.id)
        ).scalar_one()
        return {"receipt_id": int(receipt_id), "transaction_id": tx_id}

    return idempotency.once(
        conn,
        scope=f"wallet.top_up:{account.id}",
        key=idempotency_key,
        request=request,
        now=now,
        perform=perform,
        load=lambda response: load_receipt(conn, int(response["receipt_id"])),
    )


# ---------------------------------------------------------------------------- adjust, refund


def adjust(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    reason: str,
    idempotency_key: str,
    clock: Clock,
    currency: str | None = None,
    policy: DrainPolicy = DrainPolicy.ENFORCE_FLOOR,
) -> Transaction:
    """Correct the paid balance by a signed `amount` (an operator's correction, with reason).

    A negative adjustment respects the floor unless `policy` is ALLOW_NEGATIVE.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("an adjustment needs a reason")
    request = {"amount": parse_amount(amount), "reason": reason, "currency": currency}

    def work(conn: Connection) -> Transaction:
        now = clock.now()
        account = billing_account(conn, account_id)

        def perform() -> dict[str, Any]:
            check_currency(account, currency)
            unit = account.currency
            delta = minor_amount(amount, unit, signed=True)
            paid = paid_bucket(ledger_store.load_buckets(conn, [account.id], unit=unit), unit)
            if (
                delta < 0
                and policy is not DrainPolicy.ALLOW_NEGATIVE
                and paid.available + delta < account.floor_micros
            ):
                raise InsufficientBalance(
                    f"insufficient balance: adjusting by {from_minor(delta, unit)} {unit} "
                    f"would take the balance below its floor"
                )
            other = ledger_store.system_account(conn, f"adjustments:{unit}", unit, now)
            source, destination = (other, paid.id) if delta > 0 else (paid.id, other)
            tx_id = ledger_store.apply_entry(
                conn,
                _with_subject(
                    transfer(
                        "adjustment",
                        account_id=account.id,
                        source_id=source,
                        destination_id=destination,
                        amount=abs(delta),
                        unit=unit,
                        memo=reason,
                        idempotency_key=idempotency_key,
                    ),
                    account_id,
                ),
                now,
            )
            return {"transaction_id": tx_id}

        return idempotency.once(
            conn,
            scope=f"wallet.adjust:{account.id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=_replay_transaction(conn),
        )

    return db.run(work)


def _with_subject(entry: JournalEntry, subject_account_id: int) -> JournalEntry:
    return dataclasses.replace(entry, subject_account_id=subject_account_id)


def refund(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    reason: str,
    idempotency_key: str,
    clock: Clock,
    currency: str | None = None,
) -> Transaction:
    """Pay money back out of the paid balance (never more than its positive available part)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a refund needs a reason")
    request = {"amount": parse_amount(amount), "reason": reason, "currency": currency}

    def work(conn: Connection) -> Transaction:
        now = clock.now()
        account = billing_account(conn, account_id)

        def perform() -> dict[str, Any]:
            check_currency(account, currency)
            unit = account.currency
            minor = minor_amount(amount, unit)
            paid = paid_bucket(ledger_store.load_buckets(conn, [account.id], unit=unit), unit)
            if paid.available < minor:
                raise InsufficientBalance(
                    f"insufficient balance: cannot refund {from_minor(minor, unit)} {unit}, "
                    f"the paid balance available is {from_minor(max(paid.available, 0), unit)}"
                )
            cash = ledger_store.system_account(conn, f"cash:{unit}", unit, now)
            tx_id = ledger_store.apply_entry(
                conn,
                _with_subject(
                    transfer(
                        "refund",
                        account_id=account.id,
                        source_id=paid.id,
                        destination_id=cash,
                        amount=minor,
                        unit=unit,
                        memo=reason,
                        idempotency_key=idempotency_key,
                    ),
                    account_id,
                ),
                now,
            )
            return {"transaction_id": tx_id}

        return idempotency.once(
            conn,
            scope=f"wallet.refund:{account.id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=_replay_transaction(conn),
        )

    return db.run(work)


# ---------------------------------------------------------------------------- grants


@dataclass(frozen=True, slots=True)
class Grant:
    bucket_id: int
    kind: str
    unit: str
    amount: Decimal
    expires_at: datetime | None
    transaction: Transaction


def grant_credit(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    kind: str,
    idempotency_key: str,
    clock: Clock,
    unit: str | None = None,
    expires_at: datetime | None = None,
    priority: int | None = None,
    service: str | None = None,
    direction: str | None = None,
    label: str | None = None,
) -> Grant:
    """Give credit in a new bucket: trial, free, incoming-/outgoing-only money, or a package.

    Packages are units (``s:call`` seconds, ``msg:sms`` messages...); the other kinds are in
    the account's currency. The bucket drains before the paid balance, by priority then
    earliest expiry, and is no longer usable from `expires_at` on.
    """
    try:
        bucket_kind = BucketKind(kind)
    except ValueError:
        bucket_kind = BucketKind.SYSTEM
    if bucket_kind not in GRANT_KINDS:
        choices = ", ".join(sorted(k.value for k in GRANT_KINDS))
        raise InvalidInput(f"credit kind must be one of {choices}, got {kind!r}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at must be timezone-aware")
    if priority is not None and (not isinstance(priority, int) or priority < 0):
        raise InvalidInput(f"priority must be a non-negative integer, got {priority!r}")
    request = {
        "amount": parse_amount(amount),
        "kind": bucket_kind,
        "unit": unit,
        "expires_at": expires_at,
        "priority": priority,
        "service": service,
        "direction": direction,
        "label": label,
    }

    def work(conn: Connection) -> Grant:
        now = clock.now()
        account = billing_account(conn, account_id)

        def perform() -> dict[str, Any]:
            if bucket_kind is BucketKind.PACKAGE:
                if unit is None or is_money_unit(validate_unit(unit)):
                    raise InvalidInput("a package is in units: s:<counter> or msg:<counter>")
                grant_unit = unit
            else:
                check_currency(account, unit)
                grant_unit = account.currency
            minor = minor_amount(amount, grant_unit)
            if expires_at is not None and expires_at <= now:
                raise InvalidInput(f"expires_at {expires_at.isoformat()} is already past")
            bucket_direction = direction_name(direction)
            if bucket_kind is BucketKind.INCOMING:
                bucket_direction = Direction.INBOUND.value
            elif bucket_kind is BucketKind.OUTGOING:
                bucket_direction = Direction.OUTBOUND.value
            bucket_id = ledger_store.create_bucket(
                conn,
                account_id=account.id,
                kind=bucket_kind,
                unit=grant_unit,
                now=now,
                priority=DEFAULT_PRIORITY[bucket_kind] if priority is None else priority,
                expires_at=expires_at,
                service=service_name(service),
                direction=bucket_direction,
                counter=grant_unit.split(":", 1)[1] if ":" in grant_unit else None,
                label=label,
            )
            source = ledger_store.system_account(conn, f"promotions:{grant_unit}", grant_unit, now)
            tx_id = ledger_store.apply_entry(
                conn,
                _with_subject(
                    transfer(
                        "grant",
                        account_id=account.id,
                        source_id=source,
                        destination_id=bucket_id,
                        amount=minor,
                        unit=grant_unit,
                        memo=label,
                        details={"bucket_kind": bucket_kind.value, "bucket_id": bucket_id},
                        idempotency_key=idempotency_key,
                    ),
                    account_id,
                ),
                now,
            )
            return {"transaction_id": tx_id, "bucket_id": bucket_id}

        def load(response: Mapping[str, Any]) -> Grant:
            bucket = conn.execute(
                select(ledger_accounts).where(ledger_accounts.c.id == response["bucket_id"])
            ).one()
            tx = load_transaction(conn, int(response["transaction_id"]))
            return Grant(
                bucket_id=bucket.id,
                kind=bucket.kind,
                unit=bucket.unit,
                amount=tx.changes.get(bucket.unit, Decimal(0)),
                expires_at=bucket.expires_at,
                transaction=tx,
            )

        return idempotency.once(
            conn,
            scope=f"wallet.grant:{account.id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=load,
        )

    return db.run(work)


# ---------------------------------------------------------------------------- debits


@dataclass(frozen=True, slots=True)
class DebitRequest:
    """One charge: `amount` of `unit` (default: the payer's currency) for `service`."""

    account_id: int
    amount: Decimal | str | int
    idempotency_key: str
    service: str
    direction: str | None = None
    unit: str | None = None
    memo: str | None = None
    details: Mapping[str, Any] | None = None
    policy: DrainPolicy = DrainPolicy.ENFORCE_FLOOR

    def request_hash(self, unit: str, minor: int) -> str:
        """Hash of what this debit asks for (fast path: a CDR batch hashes thousands)."""
        details = (
            json.dumps(idempotency.canonical(dict(self.details)), sort_keys=True)
            if self.details
            else ""
        )
        text = "\x1f".join(
            (
                str(self.account_id),
                unit,
                str(minor),
                self.service,
                self.direction or "",
                self.memo or "",
                str(self.policy),
                details,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class _Pending:
    """A validated debit of a batch, waiting for its bucket plan."""

    index: int
    request: DebitRequest
    payer: Account
    unit: str
    minor: int
    service: str
    direction: str | None
    scope: str
    hashed: str


def debit(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    service: str,
    idempotency_key: str,
    clock: Clock,
    direction: str | None = None,
    unit: str | None = None,
    memo: str | None = None,
    details: Mapping[str, Any] | None = None,
    policy: DrainPolicy = DrainPolicy.ENFORCE_FLOOR,
) -> Transaction:
    """Charge usage of `account_id` to its payer's buckets (see `telbill.ledger.buckets`).

    Raises InsufficientBalance (nothing written) when the buckets cannot cover it.
    """
    request = DebitRequest(
        account_id=account_id,
        amount=amount,
        idempotency_key=idempotency_key,
        service=service,
        direction=direction,
        unit=unit,
        memo=memo,
        details=details,
        policy=policy,
    )
    outcome = debit_many(db, [request], clock=clock)[0]
    if isinstance(outcome, TelbillError):
        raise outcome
    return outcome


def debit_many(
    db: Database, requests: Sequence[DebitRequest], *, clock: Clock
) -> list[Transaction | TelbillError]:
    """Post many debits in one database transaction (a CDR batch), in order.

    Each debit succeeds or fails on its own: a refused one (bad input, insufficient balance,
    idempotency conflict) is returned as its error and writes nothing; the others post.
    """
    return db.run(lambda conn: debit_many_in(conn, requests, now=clock.now()))


def debit_many_in(
    conn: Connection, requests: Sequence[DebitRequest], *, now: datetime
) -> list[Transaction | TelbillError]:
    """`debit_many` inside a transaction the caller already holds."""
    outcomes: list[Transaction | TelbillError | None] = [None] * len(requests)
    # Accounts holding their wallet are their own payers: read in one query for the batch
    # (others, and unknown ids, go through `billing_account` one by one, as before).
    requested = {r.account_id for r in requests if type(r.account_id) is int}
    payers = {
        account.id: account
        for account in (find_accounts(conn, requested) if len(requested) > 1 else {}).values()
        if account.has_wallet
    }
    pending: list[_Pending] = []
    for index, request in enumerate(requests):
        try:
            pending.append(_validate_debit(conn, index, request, payers))
        except TelbillError as error:
            outcomes[index] = error

    stored = _stored_keys(conn, pending)
    buckets = {b.id: b for b in ledger_store.load_buckets(conn, {p.payer.id for p in pending})}
    drains: dict[int, WalletDrain] = {}
    entries: list[JournalEntry] = []
    entry_owner: list[_Pending] = []
    seen: dict[tuple[str, str], _Pending] = {}
    replays: dict[int, tuple[str, str]] = {}
    for item in pending:
        key = (item.scope, item.request.idempotency_key)
        previous = stored.get(key) or ((seen[key].hashed, None) if key in seen else None)
        if previous is not None:
            if previous[0] != item.hashed:
                outcomes[item.index] = IdempotencyConflict(
                    f"idempotency key {item.request.idempotency_key!r} was already used "
                    "for a different request"
                )
            else:
                replays[item.index] = key
            continue
        try:
            entry = _plan_debit(conn, item, buckets, drains, now)
        except TelbillError as error:
            outcomes[item.index] = error
            continue
        seen[key] = item
        entries.append(entry)
        entry_owner.append(item)

    tx_ids = ledger_store.apply_entries(conn, entries, now)
    if entry_owner:
        created_at = bulk.timestamp_param(conn)(now)
        try:
            bulk.insert_rows(
                conn,
                idempotency_keys,
                ("scope", "key", "request_hash", "response", "created_at"),
                [
                    (
                        item.scope, item.request.idempotency_key, item.hashed,
                        f'{{"transaction_id":{int(tx_id)}}}', created_at,
                    )
                    for item, tx_id in zip(entry_owner, tx_ids, strict=True)
                ],  # fmt: skip
            )
        except IntegrityError as exc:
            # Another worker posted one of these keys first: start over, it will replay.
            raise RetryTransaction("idempotency key stored concurrently") from exc
    new_by_key = {
        (item.scope, item.request.idempotency_key): tx_id
        for item, tx_id in zip(entry_owner, tx_ids, strict=True)
    }
    wanted = [stored[key][1] if key in stored else new_by_key[key] for key in replays.values()]
    loaded = load_transactions(conn, [i for i in wanted if i is not None])
    for item, entry, tx_id in zip(entry_owner, entries, tx_ids, strict=True):
        outcomes[item.index] = _new_transaction(entry, tx_id, item, buckets, now)
    for index, key in replays.items():
        tx_id = stored[key][1] if key in stored else new_by_key[key]
        outcomes[index] = loaded[int(tx_id)] if tx_id is not None else None
    return [o if o is not None else TelbillError("debit produced no result") for o in outcomes]


def _validate_debit(
    conn: Connection, index: int, request: DebitRequest, payers: dict[int, Account]
) -> _Pending:
    idempotency.validate_key(request.idempotency_key)
    service = service_name(request.service)
    if service is None:
        raise InvalidInput("a debit needs a service")
    direction = direction_name(request.direction)
    payer = payers.get(request.account_id)
    if payer is None:
        payer = billing_account(conn, request.account_id)
        payers[request.account_id] = payer
    unit = payer.currency if request.unit is None else validate_unit(request.unit)
    if is_money_unit(unit):
        check_currency(payer, unit)
    minor = minor_amount(request.amount, unit)
    return _Pending(
        index=index,
        request=request,
        payer=payer,
        unit=unit,
        minor=minor,
        service=service,
        direction=direction,
        scope=f"wallet.debit:{payer.id}",
        hashed=request.request_hash(unit, minor),
    )


_PROBES_PER_STATEMENT = 2500


def _stored_keys(
    conn: Connection, pending: Sequence[_Pending]
) -> dict[tuple[str, str], tuple[str, int | None]]:
    by_scope: dict[str, set[str]] = {}
    for item in pending:
        by_scope.setdefault(item.scope, set()).add(item.request.idempotency_key)
    # `scope IN (...) AND key IN (...)` is served by the unique (scope, key) index, one
    # probe per (scope, key) combination: a scope with many keys (a CDR batch of one payer)
    # is read alone, scopes with few keys (one renewal or call of each of many payers) are
    # read together, as long as the combinations stay few; pairs not asked for are dropped.
    groups: list[tuple[list[str], set[str]]] = []
    for scope, scope_keys in sorted(by_scope.items()):
        if groups:
            scopes, keys = groups[-1]
            if (len(scopes) + 1) * len(keys | scope_keys) <= _PROBES_PER_STATEMENT:
                scopes.append(scope)
                keys.update(scope_keys)
                continue
        groups.append(([scope], set(scope_keys)))
    found: dict[tuple[str, str], tuple[str, int | None]] = {}
    for scopes, group_keys in groups:
        keys = sorted(group_keys)
        for start in range(0, len(keys), 500):
            rows = conn.execute(
                select(
                    idempotency_keys.c.scope,
                    idempotency_keys.c.key,
                    idempotency_keys.c.request_hash,
                    idempotency_keys.c.response,
                ).where(
                    idempotency_keys.c.scope.in_(scopes),
                    idempotency_keys.c.key.in_(keys[start : start + 500]),
                )
            )
            for row in rows:
                if row.key in by_scope[row.scope]:
                    found[(row.scope, row.key)] = (
                        row.request_hash,
                        row.response.get("transaction_id"),
                    )
    return found


def _plan_debit(
    conn: Connection,
    item: _Pending,
    buckets: dict[int, Bucket],
    drains: dict[int, WalletDrain],
    now: datetime,
) -> JournalEntry:
    # One WalletDrain per payer: each debit is planned as `plan_drain` would plan it against
    # the balances the batch's earlier debits left.
    drain = drains.get(item.payer.id)
    if drain is None:
        own = [b for b in buckets.values() if b.account_id == item.payer.id]
        drain = drains[item.payer.id] = WalletDrain(own, now=now)
    takes: dict[int, int] = {}
    try:
        covered = drain.take(
            item.minor,
            unit=item.unit,
            service=item.service,
            direction=item.direction,
            floor=item.payer.floor_micros if item.unit == item.payer.currency else 0,
            policy=item.request.policy,
            into=takes,
        )
    except InsufficientBalance as refused:
        raise refuse_insufficient(refused, account_id=item.request.account_id) from None
    plan = DrainPlan(
        unit=item.unit,
        amount=item.minor,
        takes=tuple(Take(bucket_id, amount) for bucket_id, amount in takes.items()),
        shortfall=item.minor - covered,
    )
    # Cached after its first commit: no round trip while the buckets are locked.
    revenue = ledger_store.system_account(
        conn, f"revenue:{item.service}:{item.unit}", item.unit, now
    )
    details = dict(item.request.details or {})
    details["service"] = item.service
    if item.direction:
        details["direction"] = item.direction
    if plan.shortfall:
        details["shortfall"] = plan.shortfall
    postings_ = drain_postings(plan, destination_id=revenue)
    if not postings_:
        raise InsufficientBalance(
            f"insufficient balance: nothing available in {item.unit} for {item.service}"
        )
    return JournalEntry(
        kind="debit",
        account_id=item.payer.id,
        subject_account_id=item.request.account_id,
        postings=postings_,
        memo=item.request.memo,
        details=details,
        idempotency_key=item.request.idempotency_key,
    )


def _new_transaction(
    entry: JournalEntry, tx_id: int, item: _Pending, buckets: dict[int, Bucket], now: datetime
) -> Transaction:
    views = []
    change = 0
    for posting in entry.postings:
        bucket = buckets.get(posting.ledger_account_id)
        if bucket is not None:
            change += posting.amount
        views.append(
            PostingView(
                ledger_account_id=posting.ledger_account_id,
                amount=from_minor(posting.amount, posting.unit),
                unit=posting.unit,
                bucket_kind=bucket.kind.value if bucket else BucketKind.SYSTEM.value,
                owner_account_id=item.payer.id if bucket else None,
                code=None if bucket else f"revenue:{item.service}:{item.unit}",
            )
        )
    return Transaction(
        id=tx_id,
        kind=entry.kind,
        account_id=entry.account_id,
        subject_account_id=entry.subject_account_id,
        created_at=now,
        memo=entry.memo,
        details=dict(entry.details),
        postings=tuple(views),
        changes={item.unit: from_minor(change, item.unit)},
    )


from telbill.services.balances import (  # noqa: E402
    Balances,
    BucketBalance,
    HistoryPage,
    UnitBalance,
    get_balances,
    list_history,
)
from telbill.services.holds import Hold, expire_holds, hold, settle, void  # noqa: E402

__all__ = [
    "Balances",
    "BucketBalance",
    "DebitRequest",
    "Grant",
    "HistoryPage",
    "Hold",
    "Receipt",
    "Transaction",
    "UnitBalance",
    "adjust",
    "debit",
    "debit_many",
    "debit_many_in",
    "expire_holds",
    "get_balances",
    "grant_credit",
    "hold",
    "list_history",
    "refund",
    "settle",
    "top_up",
    "vat_included",
    "void",
]
