"""Which CDRs of a chunk are already charged: the idempotency lookup of CDR posting.

One lookup per chunk for all its usage accounts, keyed by (leaf account, CDR id): a file
spread over many wallets asked one query per account per chunk before (a thousand wallets,
a thousand queries per chunk, about a fifth of the posting time).

A large file grows `charges` by millions of rows while it posts, and the lookup runs once
per chunk, so its plan must not depend on table statistics. On PostgreSQL an
``account_id = ? AND cdr_id IN (...)`` query on a table never analysed since it was
empty (autovacuum off, or not yet run) was planned as an index scan on ``account_id``
alone with ``cdr_id`` as a filter: every charge of the account read per chunk, so a
1,000,000-CDR file slowed down chunk after chunk. Here each wanted (account, CDR id) pair
is one probe of the unique (account, CDR id, leg, revision) index, from two ``unnest``ed
arrays (zipped: pair by pair) joined ``LATERAL`` (``OFFSET 0`` keeps the subquery from
being flattened into a join the planner could turn into a hash join over the table): the
cost is per pair wanted, not per row stored, whatever the statistics say. On SQLite a
``VALUES`` list of the pairs ``CROSS JOIN``ed to `charges` (the list is the outer loop) is
one probe of that index per pair, in batches well under the bound-parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import BigInteger, Connection, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

_PG_CHARGED = text(
    "SELECT wanted.account_id, wanted.cdr_id, found.usage_hash"
    " FROM unnest(:account_ids, :cdr_ids) AS wanted(account_id, cdr_id)"
    " CROSS JOIN LATERAL ("
    "  SELECT charges.usage_hash FROM charges"
    "  WHERE charges.account_id = wanted.account_id AND charges.cdr_id = wanted.cdr_id"
    "  AND charges.revision = 0 OFFSET 0"
    " ) AS found"
).bindparams(
    bindparam("account_ids", type_=ARRAY(BigInteger)),
    bindparam("cdr_ids", type_=ARRAY(String)),
)

# (account, CDR id) pairs per SQLite statement: two bound parameters each, well under
# SQLite's limit (32,766 since 3.32); a chunk of 5,000 CDRs is one statement.
_SQLITE_BATCH = 5_000


def _sqlite_charged(size: int) -> str:
    # CROSS JOIN keeps the VALUES list the outer loop: one probe of the unique index
    # (account_id, cdr_id) per pair. A row-value ``IN (VALUES ...)`` is planned as a scan.
    values = ",".join(["(?,?)"] * size)  # placeholders only
    select = "SELECT wanted.column1, wanted.column2, charges.usage_hash"
    join = f"FROM (VALUES {values}) AS wanted CROSS JOIN charges"
    return (
        f"{select} {join}"  # noqa: S608
        " ON charges.account_id = wanted.column1 AND charges.cdr_id = wanted.column2"
        " WHERE charges.revision = 0"
    )


def charged_pairs(
    conn: Connection, wanted: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], str | None]:
    """The usage hash of each (leaf account, CDR id) of `wanted` already charged.

    A CDR id charged to another account does not match; duplicate pairs are asked once.
    """
    pairs = sorted(set(wanted))
    found: dict[tuple[int, str], str | None] = {}
    if not pairs:
        return found
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _PG_CHARGED,
            {"account_ids": [a for a, _ in pairs], "cdr_ids": [c for _, c in pairs]},
        )
        found.update(((account_id, cdr_id), hashed) for account_id, cdr_id, hashed in rows)
        return found
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        for start in range(0, len(pairs), _SQLITE_BATCH):
            batch = pairs[start : start + _SQLITE_BATCH]
            params = [value for pair in batch for value in pair]
            cursor.execute(_sqlite_charged(len(batch)), params)
            found.update(
                ((account_id, cdr_id), hashed) for account_id, cdr_id, hashed in cursor
            )
    finally:
        cursor.close()
    return found


def charged_usage_hashes(
    conn: Connection, account_id: int, cdr_ids: Sequence[str]
) -> dict[str, str | None]:
    """The usage hash of each CDR of `cdr_ids` already charged to leaf `account_id`."""
    found = charged_pairs(conn, ((account_id, cdr_id) for cdr_id in cdr_ids))
    return {cdr_id: hashed for (_, cdr_id), hashed in found.items()}


__all__ = ["charged_pairs", "charged_usage_hashes"]
