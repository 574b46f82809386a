"""CDR posting prices plain outbound calls with the numpy batch rater: the charges, balances
and explanations must be exactly those of the per-event path (`rate_event`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from charging_support import (  # noqa: F401  (fixture)
    World,
    cdr_line,
    paid,
    world_fixture,
    write_cdrs,
)

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services import charging
from telbill.services.reconcile import reconcile


class _NothingBatched:
    """Stands in for `CdrColumns`: every event goes to the per-event path."""

    @staticmethod
    def from_events(events: list[Any], **_: Any) -> tuple[None, list[int], list[int]]:
        return None, [], list(range(len(events)))


def _lines(prefix: str) -> list[str]:
    destinations = ["+447700900123", "+15551234567", "+4930123456", "1001"]
    lines = [
        cdr_line(f"{prefix}{n}", destinations[n % 4], [0, 1, 59, 60, 61, 599, None][n % 7])
        for n in range(28)
    ]
    lines.append(cdr_line(f"{prefix}in", "+15551234567", 42, direction="inbound"))
    return lines


def _post(world: World, path: Path) -> charging.PostSummary:
    return charging.post_cdrs(
        world.db, read_cdr_file(path, "native"), clock=world.clock, source="same-source"
    )


def _charges_by_cdr(world: World, prefix: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for charge_id in range(1, 200):
        try:
            view = charging.get_charge(world.db, charge_id)
        except charging.NotFound:
            break
        if view.cdr_id.startswith(prefix):
            found[view.cdr_id[len(prefix) :] + ":" + view.leg] = {
                "amount": view.amount, "billed": view.billed_units, "prefix": view.prefix,
                "version": view.tariff_version, "explanation": view.explanation,
            }  # fmt: skip
    return found


def test_batch_priced_calls_charge_and_explain_exactly_like_per_event_rating(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = paid(world)
    batched = _post(world, write_cdrs(tmp_path / "a.csv", _lines("a")))
    after_batch = paid(world)
    with monkeypatch.context() as patch:
        patch.setattr(charging, "CdrColumns", _NothingBatched)
        single = _post(world, write_cdrs(tmp_path / "b.csv", _lines("b")))
    assert (batched.posted, batched.quarantined) == (single.posted, single.quarantined)
    assert batched.charged == single.charged
    assert start - after_batch == after_batch - paid(world)
    by_batch, by_event = _charges_by_cdr(world, "a"), _charges_by_cdr(world, "b")
    assert by_batch and by_batch == by_event
    assert reconcile(world.db).ok


def test_batch_priced_charge_stores_a_compact_explanation_and_replay_charges_nothing(
    world: World, tmp_path: Path
) -> None:
    path = write_cdrs(tmp_path / "a.csv", [cdr_line("c1", "+447700900123", 61)])
    _post(world, path)
    balance = paid(world)
    again = _post(world, path)
    assert (again.posted, again.duplicates) == (0, 1)
    assert paid(world) == balance
    with world.db.transaction() as conn:
        stored = conn.execute(charging.select(charging.charges.c.explanation)).scalar_one()
    assert stored.get(charging.DERIVED)
    assert "matched prefix 44" in charging.get_charge(world.db, 1).text
