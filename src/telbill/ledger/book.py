"""Many wallets' locked buckets in memory: holds reserved and settled, debits, and the
changes to write to their ``balance`` and ``held`` columns.

Pure. A batch of real-time requests (`services.session_batch`) reads and locks the buckets of
every wallet it touches once, decides request after request against the balances the
previous ones left (each exactly as `plan_drain` / `plan_settlement` decide one), and writes
the summed deltas in one statement at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from telbill.ledger.buckets import Bucket, DrainPlan, DrainPolicy, plan_drain
from telbill.ledger.holds import HoldLine, Settlement, plan_settlement


class WalletBook:
    """Buckets by id, their changes since read (`balance_deltas`, `held_deltas`)."""

    def __init__(self, buckets: Iterable[Bucket]) -> None:
        self._buckets: dict[int, Bucket] = {}
        self._by_account: dict[int | None, list[int]] = {}
        self.balance_deltas: dict[int, int] = {}
        self.held_deltas: dict[int, int] = {}
        self.load(buckets)

    def load(self, buckets: Iterable[Bucket]) -> None:
        """(Re)read buckets as stored: their pending deltas must have been written."""
        for bucket in buckets:
            if bucket.id not in self._buckets:
                self._by_account.setdefault(bucket.account_id, []).append(bucket.id)
            self._buckets[bucket.id] = bucket

    def of(self, account_id: int) -> list[Bucket]:
        """The buckets of wallet `account_id` as the changes so far left them."""
        return [self._buckets[i] for i in self._by_account.get(account_id, ())]

    def _move(self, bucket_id: int, *, balance: int = 0, held: int = 0) -> None:
        bucket = self._buckets[bucket_id]
        self._buckets[bucket_id] = replace(
            bucket, balance=bucket.balance + balance, held=bucket.held + held
        )
        if balance:
            self.balance_deltas[bucket_id] = self.balance_deltas.get(bucket_id, 0) + balance
        if held:
            self.held_deltas[bucket_id] = self.held_deltas.get(bucket_id, 0) + held

    def reserve(
        self,
        account_id: int,
        amount: int,
        *,
        unit: str,
        service: str | None,
        direction: str | None,
        floor: int,
        now: datetime,
    ) -> tuple[HoldLine, ...]:
        """Hold `amount` in the wallet (drain order, floor kept): its lines, positions from
        0. Raises InsufficientBalance (nothing changed) when the buckets cannot give it."""
        plan = plan_drain(
            self.of(account_id), amount, unit=unit, service=service, direction=direction,
            now=now, floor=floor, policy=DrainPolicy.ENFORCE_FLOOR,
        )  # fmt: skip
        for take in plan.takes:
            self._move(take.bucket_id, held=take.amount)
        return tuple(HoldLine(t.bucket_id, t.amount, n) for n, t in enumerate(plan.takes))

    def settle(self, lines: Sequence[HoldLine], amount: int) -> Settlement:
        """Take `amount` (<= held) from a hold's lines, in order, and release all of them."""
        settlement = plan_settlement(lines, amount)
        for take in settlement.takes:
            self._move(take.bucket_id, balance=-take.amount)
        for release in settlement.releases:
            self._move(release.bucket_id, held=-release.amount)
        return settlement

    def debit(
        self,
        account_id: int,
        amount: int,
        *,
        unit: str,
        service: str | None,
        direction: str | None,
        floor: int,
        now: datetime,
        policy: DrainPolicy,
    ) -> DrainPlan:
        """Take `amount` from the wallet's balances (see `plan_drain`)."""
        plan = plan_drain(
            self.of(account_id), amount, unit=unit, service=service, direction=direction,
            now=now, floor=floor, policy=policy,
        )  # fmt: skip
        for take in plan.takes:
            self._move(take.bucket_id, balance=-take.amount)
        return plan

    def take_deltas(self) -> tuple[dict[int, int], dict[int, int]]:
        """The (balance, held) deltas not written yet, forgotten here (the caller writes)."""
        deltas = (self.balance_deltas, self.held_deltas)
        self.balance_deltas, self.held_deltas = {}, {}
        return deltas


__all__ = ["WalletBook"]
