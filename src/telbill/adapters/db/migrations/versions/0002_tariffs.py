"""Tariffs: immutable tariff versions and their rate rows (money in nano-units).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("source_file", sa.String(500), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", "version"),
        sa.CheckConstraint("version >= 1", name="version"),
    )
    op.create_table(
        "tariff_rates",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tariff_id", Id, sa.ForeignKey("tariffs.id"), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("number_type", sa.String(16), nullable=False),
        sa.Column("rate_nanos", sa.BigInteger, nullable=False),
        sa.Column("connect_fee_nanos", sa.BigInteger, nullable=False),
        sa.Column("increment_first_s", sa.Integer, nullable=True),
        sa.Column("increment_next_s", sa.Integer, nullable=True),
        sa.Column("min_seconds", sa.Integer, nullable=False),
        sa.Column("free_seconds", sa.Integer, nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("weekdays", sa.String(16), nullable=True),
        sa.Column("hours", sa.String(16), nullable=True),
        sa.Column("tiers", sa.JSON, nullable=True),
        sa.Column("decimals", sa.Integer, nullable=True),
        sa.Column("rounding", sa.String(20), nullable=True),
        sa.CheckConstraint("rate_nanos >= 0 AND connect_fee_nanos >= 0", name="money"),
    )
    op.create_index("ix_tariff_rates_tariff_id", "tariff_rates", ["tariff_id"])


def downgrade() -> None:
    op.drop_index("ix_tariff_rates_tariff_id", table_name="tariff_rates")
    op.drop_table("tariff_rates")
    op.drop_table("tariffs")
