"""Wallets on SQLite and PostgreSQL: top-ups with VAT receipts, grants, debits, adjustments,
refunds, balances, history, idempotency, and bad input that writes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from ledger_support import (  # noqa: F401 (fixtures)
    alembic,
    key,
    manual_clock,
    migrated_db,
    organisation,
    paid_balance,
    provider,
    row_counts,
    user,
)
from sqlalchemy import select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import ledger_accounts
from telbill.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidInput,
    NotFound,
    TelbillError,
)
from telbill.ledger import DrainPolicy
from telbill.services import wallets
from telbill.services.accounts import Account
from telbill.services.clock import ManualClock
from telbill.services.reconcile import reconcile
from telbill.services.wallets import DebitRequest


@pytest.fixture
def org(db: Database, clock: ManualClock) -> Account:
    return organisation(db, clock, provider(db, clock))


def system_balance(db: Database, code: str) -> int:
    with db.transaction() as conn:
        return ledger_store.system_balance(conn, code)


def spend(
    db: Database, clock: ManualClock, account: Account, amount: str, **kw: object
) -> wallets.Transaction:
    params: dict[str, object] = {"service": "voice", "direction": "outbound"}
    params.update(kw)
    return wallets.debit(db, account.id, amount, idempotency_key=key("d"), clock=clock, **params)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- top-ups


def test_top_up_receipt_shows_gross_vat_net_and_new_balance(
    db: Database, clock: ManualClock, org: Account
) -> None:
    receipt = wallets.top_up(db, org.id, "12.00", idempotency_key=key(), clock=clock)
    assert (receipt.amount, receipt.vat, receipt.net) == (Decimal(12), Decimal(2), Decimal(10))
    assert receipt.new_balance == Decimal(12) == paid_balance(db, org.id)
    assert receipt.vat_rate == Decimal("0.2") and receipt.vat_country == "GB"
    assert system_balance(db, "vat_payable:USD") == 2_000_000
    assert system_balance(db, "cash:USD") == -12_000_000


def test_vat_is_rounded_half_up_to_the_micro(
    db: Database, clock: ManualClock, org: Account
) -> None:
    # 0.000003 * 0.2 / 1.2 = 0.0000005 exactly: half-up gives 0.000001.
    receipt = wallets.top_up(db, org.id, "0.000003", idempotency_key=key(), clock=clock)
    assert receipt.vat == Decimal("0.000001")
    assert receipt.net == Decimal("0.000002")


def test_receipt_numbers_are_sequential_per_provider(db: Database, clock: ManualClock) -> None:
    p1, p2 = provider(db, clock), provider(db, clock)
    a, b = organisation(db, clock, p1), organisation(db, clock, p2)
    numbers = [
        (
            acct.provider_id,
            wallets.top_up(db, acct.id, "1", idempotency_key=key(), clock=clock).number,
        )
        for acct in (a, b, a, a, b)
    ]
    assert numbers == [(p1.id, 1), (p2.id, 1), (p1.id, 2), (p1.id, 3), (p2.id, 2)]


def test_top_up_of_a_user_goes_to_the_wallet_that_pays_for_it(
    db: Database, clock: ManualClock, org: Account
) -> None:
    u = user(db, clock, org)
    receipt = wallets.top_up(db, u.id, "5", idempotency_key=key(), clock=clock)
    assert receipt.account_id == org.id
    assert paid_balance(db, org.id) == Decimal(5)


def test_same_top_up_key_twice_returns_the_first_receipt_and_credits_once(
    db: Database, clock: ManualClock, org: Account
) -> None:
    first = wallets.top_up(db, org.id, "10", idempotency_key="pay-1", clock=clock)
    clock.advance(minutes=5)
    again = wallets.top_up(db, org.id, "10.00", idempotency_key="pay-1", clock=clock)
    assert again == first
    assert paid_balance(db, org.id) == Decimal(10)


def test_same_top_up_key_with_another_amount_is_a_conflict_and_writes_nothing(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key="pay-1", clock=clock)
    before = row_counts(db)
    with pytest.raises(IdempotencyConflict):
        wallets.top_up(db, org.id, "11", idempotency_key="pay-1", clock=clock)
    assert row_counts(db) == before


BAD_TOP_UPS: list[tuple[object, dict[str, object]]] = [
    ("-5", {}),
    ("0", {}),
    ("abc", {}),
    ("1e3", {}),
    (1.5, {}),
    ("0.0000001", {}),
    ("5", {"currency": "EUR"}),
    ("5", {"currency": "NOPE"}),
]


def test_bad_top_up_is_refused_and_writes_nothing(
    db: Database, clock: ManualClock, org: Account
) -> None:
    before = row_counts(db)
    for amount, extra in BAD_TOP_UPS:
        with pytest.raises(InvalidInput):
            wallets.top_up(db, org.id, amount, idempotency_key=key(), clock=clock, **extra)  # type: ignore[arg-type]
    assert row_counts(db) == before


def test_missing_or_malformed_idempotency_key_is_refused(
    db: Database, clock: ManualClock, org: Account
) -> None:
    before = row_counts(db)
    for bad_key in ["", "   ", None, "x" * 201]:
        with pytest.raises(InvalidInput, match="idempotency key"):
            wallets.top_up(db, org.id, "5", idempotency_key=bad_key, clock=clock)  # type: ignore[arg-type]
    assert row_counts(db) == before


def test_unknown_account_is_not_found_and_writes_nothing(db: Database, clock: ManualClock) -> None:
    before = row_counts(db)
    with pytest.raises(NotFound):
        wallets.top_up(db, 999_999, "5", idempotency_key=key(), clock=clock)
    with pytest.raises(NotFound):
        wallets.debit(db, 999_999, "5", service="voice", idempotency_key=key(), clock=clock)
    assert row_counts(db) == before


# ------------------------------------------------------------------------------- debits


def test_debit_drains_trial_credit_before_the_paid_balance(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    wallets.grant_credit(db, org.id, "2", kind="trial", idempotency_key=key(), clock=clock)
    tx = spend(db, clock, org, "3")
    kinds = {p.bucket_kind: p.amount for p in tx.postings}
    assert kinds == {"trial": Decimal(-2), "paid": Decimal(-1), "system": Decimal(3)}
    assert tx.changes == {"USD": Decimal(-3)}
    assert paid_balance(db, org.id) == Decimal(9)


def test_prepaid_debit_beyond_the_balance_is_refused_and_writes_nothing(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "1", idempotency_key=key(), clock=clock)
    before = row_counts(db)
    with pytest.raises(InsufficientBalance, match=r"1\.500000 USD needed, 1\.000000 available"):
        spend(db, clock, org, "1.5")
    assert row_counts(db) == before


def test_postpaid_account_may_spend_down_to_minus_its_credit_limit(
    db: Database, clock: ManualClock
) -> None:
    p = provider(db, clock, billing_mode="postpaid")
    org = organisation(db, clock, p, credit_limit="50")
    spend(db, clock, org, "50")
    assert paid_balance(db, org.id) == Decimal(-50)
    with pytest.raises(InsufficientBalance):
        spend(db, clock, org, "0.000001")


def test_call_in_progress_may_cross_the_floor_under_the_allow_negative_policy(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "1", idempotency_key=key(), clock=clock)
    spend(db, clock, org, "1.25", policy=DrainPolicy.ALLOW_NEGATIVE)
    assert paid_balance(db, org.id) == Decimal("-0.25")
    assert reconcile(db).ok


def test_expired_free_credit_is_not_spent_and_counts_for_nothing(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    wallets.grant_credit(
        db,
        org.id,
        "5",
        kind="free",
        expires_at=clock.now() + timedelta(days=1),
        idempotency_key=key(),
        clock=clock,
    )
    clock.advance(days=2)
    tx = spend(db, clock, org, "1")
    assert [p.bucket_kind for p in tx.postings if p.amount < 0] == ["paid"]
    usd = wallets.get_balances(db, org.id, clock=clock).unit("USD")
    assert usd.available == Decimal(9)
    assert [b.expired for b in usd.buckets if b.kind == "free"] == [True]


def test_incoming_only_credit_pays_inbound_calls_only(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    wallets.grant_credit(db, org.id, "5", kind="incoming", idempotency_key=key(), clock=clock)
    outbound = spend(db, clock, org, "1", direction="outbound")
    inbound = spend(db, clock, org, "1", direction="inbound")
    assert [p.bucket_kind for p in outbound.postings if p.amount < 0] == ["paid"]
    assert [p.bucket_kind for p in inbound.postings if p.amount < 0] == ["incoming"]


def test_minute_package_is_drained_in_seconds_of_its_counter(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.grant_credit(
        db, org.id, "600", kind="package", unit="s:call", idempotency_key=key(), clock=clock
    )
    spend(db, clock, org, "61", unit="s:call")
    seconds = wallets.get_balances(db, org.id, clock=clock).unit("s:call")
    assert seconds.available == Decimal(539)
    with pytest.raises(InsufficientBalance, match="s units of s:call"):
        spend(db, clock, org, "540", unit="s:call")


def test_package_must_be_in_units_and_grants_must_be_in_the_account_currency(
    db: Database, clock: ManualClock, org: Account
) -> None:
    before = row_counts(db)
    with pytest.raises(InvalidInput):
        wallets.grant_credit(
            db, org.id, "1", kind="package", unit="USD", idempotency_key=key(), clock=clock
        )
    with pytest.raises(InvalidInput):
        wallets.grant_credit(
            db, org.id, "1", kind="free", unit="EUR", idempotency_key=key(), clock=clock
        )
    with pytest.raises(InvalidInput):
        wallets.grant_credit(db, org.id, "1", kind="paid", idempotency_key=key(), clock=clock)
    with pytest.raises(InvalidInput):
        wallets.grant_credit(
            db,
            org.id,
            "1",
            kind="free",
            expires_at=clock.now() - timedelta(seconds=1),
            idempotency_key=key(),
            clock=clock,
        )
    assert row_counts(db) == before


def test_debit_with_a_currency_other_than_the_account_is_refused(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    with pytest.raises(InvalidInput, match="wrong currency"):
        spend(db, clock, org, "1", unit="EUR")


def test_replayed_debit_returns_the_first_transaction_and_charges_once(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    first = wallets.debit(db, org.id, "2", service="voice", idempotency_key="cdr-1", clock=clock)
    again = wallets.debit(db, org.id, "2", service="voice", idempotency_key="cdr-1", clock=clock)
    assert again.id == first.id and again.postings == first.postings
    assert paid_balance(db, org.id) == Decimal(8)
    with pytest.raises(IdempotencyConflict):
        wallets.debit(db, org.id, "3", service="voice", idempotency_key="cdr-1", clock=clock)


def test_batch_of_debits_posts_each_on_its_own_in_one_transaction(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "5", idempotency_key=key(), clock=clock)
    u = user(db, clock, org)
    outcomes = wallets.debit_many(
        db,
        [
            DebitRequest(u.id, "2", "b-1", "voice"),
            DebitRequest(u.id, "4", "b-2", "voice"),  # only 3 left: refused
            DebitRequest(u.id, "-1", "b-3", "voice"),  # bad amount: refused
            DebitRequest(u.id, "3", "b-4", "sms"),
            DebitRequest(u.id, "2", "b-1", "voice"),  # replay inside the batch
            DebitRequest(u.id, "9", "b-1", "voice"),  # same key, other request
        ],
        clock=clock,
    )
    assert [type(o).__name__ for o in outcomes] == [
        "Transaction",
        "InsufficientBalance",
        "InvalidInput",
        "Transaction",
        "Transaction",
        "IdempotencyConflict",
    ]
    assert isinstance(outcomes[0], wallets.Transaction) and isinstance(
        outcomes[4], wallets.Transaction
    )
    assert outcomes[4].id == outcomes[0].id
    assert paid_balance(db, org.id) == Decimal(0)
    replay = wallets.debit_many(db, [DebitRequest(u.id, "3", "b-4", "sms")], clock=clock)[0]
    assert not isinstance(replay, TelbillError) and replay.id == outcomes[3].id  # type: ignore[union-attr]
    assert reconcile(db).ok


# ------------------------------------------------------------------------ adjust, refund


def test_adjustment_corrects_the_paid_balance_both_ways(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.adjust(db, org.id, "3", reason="goodwill", idempotency_key=key(), clock=clock)
    wallets.adjust(db, org.id, "-1", reason="fix", idempotency_key=key(), clock=clock)
    assert paid_balance(db, org.id) == Decimal(2)
    with pytest.raises(InsufficientBalance):
        wallets.adjust(db, org.id, "-3", reason="too much", idempotency_key=key(), clock=clock)
    with pytest.raises(InvalidInput):
        wallets.adjust(db, org.id, "1", reason=" ", idempotency_key=key(), clock=clock)


def test_refund_never_pays_out_more_than_the_paid_balance(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    wallets.refund(db, org.id, "4", reason="closing", idempotency_key=key(), clock=clock)
    assert paid_balance(db, org.id) == Decimal(6)
    before = row_counts(db)
    with pytest.raises(InsufficientBalance):
        wallets.refund(db, org.id, "6.01", reason="closing", idempotency_key=key(), clock=clock)
    assert row_counts(db) == before


# ------------------------------------------------------------------- balances, history


def test_history_pages_newest_first_without_gaps_or_repeats(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "100", idempotency_key=key(), clock=clock)
    made = [spend(db, clock, org, "1").id for _ in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        page = wallets.list_history(db, org.id, limit=3, cursor=cursor)
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen[:7] == sorted(made, reverse=True)
    assert len(seen) == 8 and seen == sorted(seen, reverse=True)


def test_history_of_a_user_without_wallet_shows_only_its_own_usage(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    alice, bob = user(db, clock, org), user(db, clock, org)
    mine = spend(db, clock, alice, "1")
    spend(db, clock, bob, "1")
    assert [t.id for t in wallets.list_history(db, alice.id).items] == [mine.id]
    assert len(wallets.list_history(db, org.id).items) == 3


@pytest.mark.parametrize(("limit", "cursor"), [(0, None), (501, None), (10, "abc")])
def test_bad_history_paging_is_refused(
    db: Database, org: Account, limit: int, cursor: str | None
) -> None:
    with pytest.raises(InvalidInput):
        wallets.list_history(db, org.id, limit=limit, cursor=cursor)


def test_balances_show_posted_held_available_and_credit_room(
    db: Database, clock: ManualClock
) -> None:
    p = provider(db, clock, billing_mode="postpaid")
    org = organisation(db, clock, p, credit_limit="20")
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    wallets.hold(
        db,
        org.id,
        "4",
        service="voice",
        expires_at=clock.now() + timedelta(minutes=5),
        idempotency_key=key(),
        clock=clock,
    )
    usd = wallets.get_balances(db, org.id, clock=clock).unit("USD")
    assert (usd.posted, usd.held, usd.available, usd.spendable) == (
        Decimal(10),
        Decimal(4),
        Decimal(6),
        Decimal(26),
    )


# ------------------------------------------------------------------------------ reconcile


def test_reconcile_finds_a_balance_that_does_not_match_its_postings(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    assert reconcile(db).ok
    with db.transaction() as conn:
        conn.execute(
            update(ledger_accounts)
            .where(ledger_accounts.c.account_id == org.id)
            .values(balance=ledger_accounts.c.balance + 1)
        )
    report = reconcile(db)
    assert not report.ok
    assert [p.check for p in report.problems] == ["balance_equals_postings"]


def test_debits_of_two_wallets_do_not_wait_for_each_other_on_the_shared_revenue_account(
    db: Database, clock: ManualClock
) -> None:
    """System accounts keep no running balance: a debit of wallet A that has not committed yet
    holds no lock that a debit of wallet B needs (PostgreSQL; SQLite has a single writer)."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: there are no row locks to compare")
    p = provider(db, clock)
    first, second = organisation(db, clock, p), organisation(db, clock, p)
    for org in (first, second):
        wallets.top_up(db, org.id, "10.00", idempotency_key=key(), clock=clock)
    spend(db, clock, first, "0.10")  # the revenue account exists and is committed

    def request(org: Account) -> DebitRequest:
        return DebitRequest(org.id, "1.00", key("d"), service="voice", direction="outbound")

    with db.engine.connect() as holder, db.engine.connect() as other:
        with holder.begin():
            assert wallets.debit_many_in(holder, [request(first)], now=clock.now())
            with other.begin():
                other.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                (posted,) = wallets.debit_many_in(other, [request(second)], now=clock.now())
                assert isinstance(posted, wallets.Transaction), posted
    assert paid_balance(db, first.id) == Decimal("8.90")
    assert paid_balance(db, second.id) == Decimal("9.00")
    with db.transaction() as conn:
        revenue = ledger_store.system_balance(conn, "revenue:voice:USD")
        column = conn.execute(
            select(ledger_accounts.c.balance).where(ledger_accounts.c.code == "revenue:voice:USD")
        ).scalar_one()
    assert (revenue, column) == (2_100_000, 0)
    assert reconcile(db).ok


def test_migration_0012_zeroes_system_balance_columns_and_its_downgrade_recomputes_them(
    db: Database, clock: ManualClock, org: Account
) -> None:
    wallets.top_up(db, org.id, "12.00", idempotency_key=key(), clock=clock)
    spend(db, clock, org, "2.50")
    url = db.engine.url.render_as_string(hide_password=False)

    def columns() -> dict[str, int]:
        with db.transaction() as conn:
            rows = conn.execute(
                select(ledger_accounts.c.code, ledger_accounts.c.balance).where(
                    ledger_accounts.c.kind == "system"
                )
            )
            return {str(r.code): int(r.balance) for r in rows}

    alembic(url, "downgrade", "0011")
    recomputed = columns()
    assert recomputed["cash:USD"] == -12_000_000 and recomputed["revenue:voice:USD"] != 0
    assert all(v == system_balance(db, c) for c, v in recomputed.items())
    alembic(url, "upgrade", "head")
    assert set(columns().values()) == {0}
    assert system_balance(db, "revenue:voice:USD") == 2_500_000
    assert reconcile(db).ok
