"""Server-side inline SVG charts (no JavaScript, no chart library)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from telbill.web.core import format_money
from telbill.web.queries import DaySpend

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 56, 28, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    day_labels: list[tuple[float, str]]
    baseline: float
    summary: str


def _nice_top(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (a round axis maximum)."""
    if value <= 0:
        return Decimal(1)
    step = Decimal(1).scaleb(value.adjusted())
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def spend_chart(days: list[DaySpend], *, currency: str) -> Chart:
    """Bars of money spent per day; the axis is in the wallet's currency."""
    top = _nice_top(max((d.amount for d in days), default=Decimal(0)))
    plot_w = WIDTH - PAD_LEFT - 8
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(days), 1)
    baseline = PAD_TOP + plot_h
    bars = []
    for n, day in enumerate(days):
        height = float(day.amount / top) * plot_h if day.amount > 0 else 0.0
        bars.append(
            Bar(
                x=PAD_LEFT + n * slot + slot * 0.15,
                y=baseline - height,
                width=slot * 0.7,
                height=height,
                label=day.day.isoformat(),
                title=f"{day.day.isoformat()}: {format_money(day.amount)} {currency}",
            )
        )
    ticks = [(baseline - plot_h * k / 4, f"{(top * k / 4).normalize():f}") for k in range(5)]
    # A label a week, and the last day unless it would touch the previous label.
    last = len(days) - 1
    labels = [
        (PAD_LEFT + n * slot + slot / 2, d.day.strftime("%d %b"))
        for n, d in enumerate(days)
        if n % 7 == 0 or (n == last and last % 7 >= 4)
    ]
    total = sum((d.amount for d in days), Decimal(0))
    summary = f"Spend per day over {len(days)} days, {format_money(total)} {currency} in total"
    return Chart(WIDTH, HEIGHT, bars, ticks, labels, baseline, summary)


__all__ = ["Chart", "spend_chart"]
