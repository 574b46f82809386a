"""Demo seeding for charging: charging plans, then a month of real calls posted as CDRs.

The calls go through the same path as `telbill cdr post`: rated by the customers' plan
(the retail tariff, costed against the carrier deck when it is there), drained from
packages, credits and the paid balance, written as charges. So the demo's call reports,
counters, margin and invoice preview show them. A fixed seed makes the month the same on
every run (only its dates follow today's).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from telbill.cli.demo import DemoContext
from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import UsageEvent
from telbill.services import plans
from telbill.services.charging import post_cdrs

# (number, weight): where the demo's customers call.
DESTINATIONS = (
    ("+1212736", 30),  # New York
    ("+1617253", 20),  # Boston
    ("+4420794", 20),  # London
    ("+4477009", 5),  # UK mobile
    ("+4930901", 15),  # Berlin
    ("+4915112", 10),  # German mobile
)
CALLERS = {"alice": "Acme Contact Centre", "bob": "Acme Contact Centre",
           "voicebot-1": "Globex Voicebots"}  # fmt: skip
CALLS_PER_USER = 40


def seed_plans(ctx: DemoContext) -> None:
    cost = "carrier-astpp" if "carrier-astpp" in ctx.tariffs else None
    plan = plans.create_plan(ctx.db, "standard", tariff="retail", clock=ctx.clock,
                             cost_tariff=cost)  # fmt: skip
    for name in ("Acme Contact Centre", "Globex Voicebots"):
        plans.assign_plan(ctx.db, ctx.accounts[name], plan.name, clock=ctx.clock)
    costed = f", costed against {cost}" if cost else ""
    ctx.report("plans", f"charging plan [bold]standard[/] (retail prices{costed}) for both")


def demo_cdrs(now: datetime, seed: int = 7) -> Iterator[UsageEvent]:
    """A month of calls and messages before `now`, the same for the same seed."""
    rng = random.Random(seed)
    numbers, weights = zip(*DESTINATIONS, strict=True)
    n = 0
    for user, account in CALLERS.items():
        for _ in range(CALLS_PER_USER):
            n += 1
            start = (
                now
                - timedelta(days=29, hours=now.hour)
                + timedelta(
                    days=rng.randrange(28), hours=rng.randrange(8, 20), minutes=rng.randrange(60)
                )
            )
            to = rng.choices(numbers, weights)[0] + f"{rng.randrange(10_000):04d}"
            inbound = user == "voicebot-1" and n % 3 == 0
            if n % 9 == 0:  # a text to a US or UK number (the retail tariff's SMS rates)
                to = rng.choice(("+1212736", "+4477009")) + f"{rng.randrange(10_000):04d}"
                yield UsageEvent(
                    id=f"demo-{n:04d}",
                    account=account,
                    user=user,
                    to_number=to,
                    start=start,
                    service=Service.SMS,
                    text="Your appointment is confirmed for tomorrow at 10:00.",
                )
                continue
            answered = rng.random() > 0.1
            seconds = int(rng.expovariate(1 / 180)) + 5
            answer = start + timedelta(seconds=rng.randrange(3, 15)) if answered else None
            yield UsageEvent(
                id=f"demo-{n:04d}",
                account=account,
                user=user,
                to_number="+16172530100" if inbound else to,
                from_number=to if inbound else "+16172530100",
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                start=start,
                answer=answer,
                end=(answer or start) + timedelta(seconds=seconds if answered else 20),
            )


def seed_calls(ctx: DemoContext) -> None:
    events = sorted(demo_cdrs(ctx.clock.now()), key=lambda event: event.start)
    summary = post_cdrs(ctx.db, events, clock=ctx.clock, source="demo-cdrs.csv")
    ctx.report(
        "calls",
        f"{len(events)} CDRs of the last month posted like `telbill cdr post`: "
        f"{summary.posted} charged, {summary.quarantined} quarantined",
    )
