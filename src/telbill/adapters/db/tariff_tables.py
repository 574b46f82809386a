"""Tariff storage tables, on the shared `metadata` of `adapters/db/tables.py`.

`tariffs` holds one row per immutable tariff version (name + version unique), with the
tariff-level settings, where the rows came from (file name and sha256) and when the version
takes effect. `tariff_rates` holds the version's rate rows.

Money in rates is stored as integer **nano-units** (10^-9 of the currency) in BigInteger
columns: carrier decks quote rates with more than the 6 decimals of a charge (e.g. 0.0012345
per minute), and 9 decimals keep every such deck exact while staying an integer like every
other amount telbill stores. Readers refuse rates with more than 9 decimals, so nothing is
ever rounded on the way in; a rate of up to 9.2 billion per minute fits.

Every tariff has an owner (0017): `owner_id` is the provider account whose catalogue it is
in, NULL for the operator's own (global) catalogue. Names are unique per owner, so two
providers each have their own `retail`; `purpose` says whether a deck is a retail price list
or a carrier cost deck (visible to provider admins only).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
)

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

NANOS_PER_UNIT = 1_000_000_000
RATE_SCALE = 9

# The columns of a plain rate row (no tiers, no per-row rounding), in the order of the
# "rate values" tuples the deck readers produce for the fast import path (see
# `telbill.adapters.formats.tariff_fields.RateValues`): the key columns come first.
RATE_VALUE_COLUMNS = (
    "prefix",
    "service",
    "direction",
    "number_type",
    "weekdays",
    "hours",
    "effective_from",
    "destination",
    "rate_nanos",
    "connect_fee_nanos",
    "increment_first_s",
    "increment_next_s",
    "min_seconds",
    "free_seconds",
    "effective_to",
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    # {"default_increment": "60/60", "timezone": "UTC", "decimals": 6,
    #  "rounding": "ROUND_HALF_UP", "max_call_s": 3600}
    Column("settings", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # When this version takes over from the previous one (NULL: from the beginning).
    Column("effective_from", UTCDateTime(), nullable=True),
    Column("row_count", Integer, nullable=False),
    Column("source_format", String(16), nullable=False),
    Column("source_file", String(500), nullable=False),
    Column("source_sha256", String(64), nullable=False),
    # The provider whose catalogue holds it (NULL: the operator's) and what it is (0017).
    Column("owner_id", Id, ForeignKey("accounts.id"), nullable=True),
    Column("purpose", String(8), nullable=False, default="retail", server_default="retail"),
    CheckConstraint("version >= 1", name="version"),
    CheckConstraint("purpose IN ('retail', 'cost')", name="purpose"),
)

# Names are unique per owner (NULL, the operator, counts as one owner: hence the COALESCE).
TARIFF_OWNER_INDEX = "uq_tariffs_owner_name_version"
Index(
    TARIFF_OWNER_INDEX,
    func.coalesce(tariffs.c.owner_id, 0),
    tariffs.c.name,
    tariffs.c.version,
    unique=True,
)

tariff_rates = Table(
    "tariff_rates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tariff_id", Id, ForeignKey("tariffs.id"), nullable=False, index=True),
    Column("prefix", String(32), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("service", String(16), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("number_type", String(16), nullable=False),
    Column("rate_nanos", BigInteger, nullable=False),
    Column("connect_fee_nanos", BigInteger, nullable=False),
    # NULL increment: the tariff's default increment.
    Column("increment_first_s", Integer, nullable=True),
    Column("increment_next_s", Integer, nullable=True),
    Column("min_seconds", Integer, nullable=False),
    Column("free_seconds", Integer, nullable=False),
    Column("effective_from", UTCDateTime(), nullable=True),
    Column("effective_to", UTCDateTime(), nullable=True),
    # "1,2,3,4,5" (ISO weekdays) and "08:00-19:00" (local, half-open); NULL: unbanded.
    Column("weekdays", String(16), nullable=True),
    Column("hours", String(16), nullable=True),
    # Later rate groups: [{"start_s": 60, "rate_nanos": ..., "increment": "1/1"}, ...]
    Column("tiers", JSON, nullable=True),
    Column("decimals", Integer, nullable=True),
    Column("rounding", String(20), nullable=True),
    # CGRateS timings: {"years": [2026], "months": [1], "month_days": [1]} (a missing key:
    # any); NULL: every day.
    Column("calendar", JSON, nullable=True),
    # CGRateS MaxCost: cap of a call's cost (nano-units) and "*free" or "*disconnect".
    Column("max_cost_nanos", BigInteger, nullable=True),
    Column("max_cost_strategy", String(16), nullable=True),
    # Data and generic rows: the units (bytes) the rate is the price of.
    Column("rate_unit", BigInteger, nullable=True),
    CheckConstraint("rate_nanos >= 0 AND connect_fee_nanos >= 0", name="money"),
)
