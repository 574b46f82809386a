"""The set-based drain of a CDR chunk (`plan_usage`) takes from every bucket, for every
leg and every journal entry, exactly what `WalletDrain.take` leg after leg takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from telbill.ledger import Bucket, BucketKind, DrainPolicy, WalletDrain
from telbill.services.usage_debits import UsageLeg, UsageLegTable, plan_usage, share_of

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
KINDS = [("voice", "outbound", "s:call"), ("sms", "outbound", "msg:sms"),
         ("voice", "inbound", "s:call")]  # fmt: skip


@dataclass
class _Payer:
    id: int
    currency: str = "USD"
    floor_micros: int = 0


def _reference(legs: list[UsageLeg], buckets: list[Bucket]) -> tuple[list, dict, dict]:
    """The drain as `post_usage_legs` did it before it was set-based: leg after leg."""
    packaged = {(b.account_id, b.unit) for b in buckets if b.kind is BucketKind.PACKAGE
                and b.balance > 0}  # fmt: skip
    drains = {
        p: WalletDrain([b for b in buckets if b.account_id == p], now=NOW)
        for p in {leg.payer.id for leg in legs}
    }
    outcomes = []
    groups: dict[tuple[int, int], dict] = {}
    for leg in legs:
        group = groups.setdefault((leg.payer.id, leg.subject_id),
                                  {"takes": {}, "revenue": {}, "cdrs": set(), "legs": 0})
        drain = drains[leg.payer.id]
        due, units, moved = leg.amount_micros, 0, False
        # A leg priced at zero takes nothing from packages (issue 17, rule 2).
        if leg.billed_units > 0 and leg.amount_micros > 0 and (leg.payer.id, leg.unit) in packaged:
            units = drain.take(leg.billed_units, unit=leg.unit, service=leg.service,
                               direction=leg.direction, policy=DrainPolicy.PARTIAL,
                               into=group["takes"])  # fmt: skip
            if units:
                due = share_of(leg.amount_micros, leg.billed_units, units)
                key = (leg.service, leg.unit)
                group["revenue"][key] = group["revenue"].get(key, 0) + units
                moved = True
        if due > 0:
            drain.take(due, unit="USD", service=leg.service, direction=leg.direction,
                       policy=DrainPolicy.ALLOW_NEGATIVE, into=group["takes"])  # fmt: skip
            key = (leg.service, "USD")
            group["revenue"][key] = group["revenue"].get(key, 0) + due
            moved = True
        if moved:
            group["cdrs"].add(leg.cdr_id)
            group["legs"] += 1
        outcomes.append((due, units, moved))
    taken: dict[int, int] = {}
    for drain in drains.values():
        taken.update(drain.taken)
    written = {key: g for key, g in groups.items() if g["legs"]}
    return outcomes, written, taken


_bucket = st.tuples(
    st.sampled_from([BucketKind.FREE, BucketKind.TRIAL, BucketKind.OUTGOING, BucketKind.PACKAGE]),
    st.integers(-50, 5_000), st.integers(0, 300), st.integers(1, 3),
    st.sampled_from([None, None, "voice"]), st.booleans(),
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    wallets=st.lists(st.tuples(st.integers(-1_000, 20_000), st.lists(_bucket, max_size=3)),
                     min_size=1, max_size=3),
    legs=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 2),
                            st.integers(0, 120), st.integers(0, 3_000), st.booleans()),
                  max_size=40),
)  # fmt: skip
def test_set_based_drain_takes_what_leg_after_leg_takes(wallets: list, legs: list) -> None:
    buckets: list[Bucket] = []
    next_id = iter(range(1, 1000))
    for payer, (paid, extras) in enumerate(wallets, start=1):
        buckets.append(Bucket(next(next_id), BucketKind.PAID, "USD", paid, account_id=payer))
        for kind, balance, held, priority, service, expiring in extras:
            unit = "s:call" if kind is BucketKind.PACKAGE else "USD"
            expires = NOW + timedelta(days=1 if expiring else -1) if expiring else None
            buckets.append(Bucket(next(next_id), kind, unit, balance, min(held, max(balance, 0)),
                                  priority, expires, service, account_id=payer))  # fmt: skip
    payers = {p: _Payer(p) for p in range(1, len(wallets) + 1)}
    usage = []
    for n, (payer, subject, kind, billed, amount, second_leg) in enumerate(legs):
        owner = payers[payer % len(wallets) + 1]
        service, direction, unit = KINDS[kind]
        cdr_id = f"c{n // 2}" if second_leg else f"c{n}"
        usage.append(UsageLeg(owner, 100 + subject, cdr_id, service, direction, unit,  # type: ignore[arg-type]
                              billed, amount))  # fmt: skip
    outcomes, groups, taken = _reference(usage, buckets)
    plan = plan_usage(UsageLegTable.of_legs(usage), buckets, NOW)
    assert [(int(d), int(u), g >= 0) for d, u, g in
            zip(plan.due_micros, plan.package_units, plan.group, strict=True)] == outcomes
    assert {k: v for k, v in plan.taken.items() if v} == {k: v for k, v in taken.items() if v}
    got = {
        (g.payer_id, g.subject_id): (
            {k: v for k, v in g.takes.items() if v}, g.revenue, len(g.cdr_keys), len(g.members)
        )
        for g in plan.groups
    }
    want = {
        key: ({k: v for k, v in g["takes"].items() if v}, g["revenue"], len(g["cdrs"]), g["legs"])
        for key, g in groups.items()
    }
    assert got == want
    assert list(got) == list(want)  # entries in the same order
