"""Switches registered to be told when telbill ends a call (`services.switches`).

A row is a switch's control endpoint (Kamailio's JSON-RPC URL) for the calls of one account's
tree; `last_event_id` is how far it has been through the ``session.disconnect`` events.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, String, Table, Text

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

SWITCH_KINDS = ("kamailio",)

switch_endpoints = Table(
    "switch_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    # Kamailio: the JSON-RPC URL (xhttp + jsonrpcs), e.g. http://10.0.0.7:5071/RPC
    Column("rpc_url", String(500), nullable=False),
    Column("active", Boolean, nullable=False),
    # session.disconnect events up to this id have been pushed (or were not this switch's).
    Column("last_event_id", Id, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("kind IN ('kamailio')", name="kind"),
)
