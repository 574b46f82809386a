"""Demo seeding for rating: a real carrier deck and a small retail tariff, then quotes.

The carrier deck is the ASTPP deck of `shared/data` when the checkout has it (36,205
prefixes, imported through a column map as a user would) or `TELBILL_DEMO_DECK`; the retail
tariff is written here in telbill's native CSV format, voice and SMS, both directions.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from telbill.adapters.formats.tariff_csv import read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow
from telbill.cli.demo import DemoContext
from telbill.domain.tariffs import (
    Direction,
    Increment,
    RateRow,
    RowError,
    Service,
    TariffSettings,
)
from telbill.services import tariffs
from telbill.services.quotes import QuoteRequest, load_tariff_index, quote

ASTPP_MAP = {
    "rate": "rate_per_minute",
    "increment": "increment_seconds",
    "free_seconds": "included_seconds",
}

RETAIL_CSV = """prefix,destination,service,direction,rate,connect_fee,increment,min_seconds
1,United States and Canada,voice,outbound,0.0150,0,60/60,0
1212,United States - New York,voice,outbound,0.0120,0,60/60,0
44,United Kingdom,voice,outbound,0.0300,0,1/1,0
447,United Kingdom - Mobile,voice,outbound,0.4500,0.01,1/1,30
49,Germany,voice,outbound,0.0250,0,30/6,0
1,United States and Canada,sms,outbound,0.0079,0,1/1,0
44,United Kingdom,sms,outbound,0.0400,0,1/1,0
1,United States and Canada,sms,inbound,0.0100,0,1/1,0
1,United States and Canada,voice,inbound,0.0085,0,60/60,0
44,United Kingdom,voice,inbound,0.0100,0,60/60,0
"""


def demo_deck() -> Path | None:
    """The carrier deck for the demo: TELBILL_DEMO_DECK, else the checkout's shared data."""
    configured = os.environ.get("TELBILL_DEMO_DECK")
    if configured:
        return Path(configured)
    for base in Path(__file__).resolve().parents:
        candidate = base / "shared" / "data" / "astpp-outbound-rates.csv"
        if candidate.is_file():
            return candidate
    return None


def _rows(items: Iterable[ParsedRow | RowError]) -> Iterator[RateRow | RowError]:
    for item in items:
        yield item.row if isinstance(item, ParsedRow) else item


def seed_tariffs(ctx: DemoContext) -> None:
    now = ctx.clock.now()
    retail = tariffs.import_tariff(
        ctx.db,
        "retail",
        _rows(read_tariff_csv(io.StringIO(RETAIL_CSV), source="retail.csv")),
        TariffSettings(currency="USD", default_increment=Increment(60, 60)),
        tariffs.TariffSource(file="retail.csv", format="native"),
        now=now - timedelta(days=40),
    )
    ctx.tariffs.append("retail")
    ctx.report("tariffs", f"retail v{retail.version.version}: {retail.version.row_count} rows")
    deck = demo_deck()
    if deck is None:
        ctx.report("tariffs", "carrier deck not found (set TELBILL_DEMO_DECK); skipped")
        return
    with deck.open(newline="", encoding="utf-8") as handle:
        carrier = tariffs.import_tariff(
            ctx.db,
            "carrier-astpp",
            _rows(read_tariff_csv(handle, column_map=ASTPP_MAP, source=deck.name)),
            TariffSettings(currency="USD", default_increment=Increment(6, 6)),
            tariffs.TariffSource(file=deck.name, format="native"),
            now=now - timedelta(days=40),
        )
    ctx.tariffs.append("carrier-astpp")
    ctx.report(
        "tariffs",
        f"carrier-astpp v{carrier.version.version}: {carrier.version.row_count:,} prefixes "
        f"from {deck.name}",
    )


def seed_quotes(ctx: DemoContext) -> None:
    now = ctx.clock.now()
    examples = [
        ("retail", QuoteRequest(to_number="+12125550100", at=now, duration_s=61)),
        ("retail", QuoteRequest(to_number="+447700900123", at=now, duration_s=83)),
        (
            "retail",
            QuoteRequest(
                to_number="+447700900123",
                at=now,
                service=Service.SMS,
                text="Your verification code is 123456. It expires in 10 minutes. "
                "Reply STOP to opt out. 🙂",
            ),
        ),
        (
            "retail",
            QuoteRequest(
                to_number="+15550100", at=now, direction=Direction.INBOUND, duration_s=300
            ),
        ),
        ("carrier-astpp", QuoteRequest(to_number="+93700123456", at=now, duration_s=95)),
    ]
    for name, request in examples:
        try:
            index = load_tariff_index(ctx.db, name, at=now)
        except Exception as error:  # the carrier deck may be absent: say so, go on
            ctx.report("quotes", f"{name}: {error}")
            continue
        rated = quote(request, index)
        charge = rated.charges[0]
        e = charge.explanation
        what = (
            f"SMS, {e.segments} segment(s) {e.encoding}"
            if request.service is Service.SMS
            else f"{request.direction.value} {request.duration_s} s, billed {e.billed_seconds} s"
        )
        ctx.report(
            "quotes",
            f"{name}: {request.to_number} {what} at {e.rate} {e.rate_unit} "
            f"(prefix {e.matched_prefix or '*'}, {e.destination}) "
            f"= {rated.total} {charge.currency}",
        )
