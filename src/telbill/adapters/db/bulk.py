"""Bulk inserts for the hot paths (CDR charges): tuples straight to the driver.

SQLAlchemy Core's executemany spends most of its time building and type-processing one
parameter dict per row. For tables written thousands of rows per transaction, callers build
plain tuples already in the driver's types and `insert_rows` hands them to the driver, in the
caller's transaction: ``sqlite3``'s ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on
PostgreSQL (psycopg 3).

Values must be what SQLAlchemy's column types would have sent, so that reads through the
tables stay equal: integers for ids and micro-units, JSON as text (`json_text`), and
timestamps through `timestamp_param` (SQLite: the naive UTC text SQLAlchemy writes,
``YYYY-MM-DD HH:MM:SS.ffffff``; PostgreSQL: the aware UTC datetime).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.exc import DBAPIError


def _sqlite_timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: telbill stores aware UTC times only")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_timestamp(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: telbill stores aware UTC times only")
    return value.astimezone(UTC)


def timestamp_param(conn: Connection) -> Callable[[datetime], Any]:
    """The function turning an aware datetime into this database's `UTCDateTime` value."""
    return _sqlite_timestamp if conn.dialect.name == "sqlite" else _pg_timestamp


def json_text(value: Any) -> str:
    """JSON as stored text (compact; reads parse it back to the same value)."""
    return json.dumps(value, separators=(",", ":"))


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    copy_text: bytes | memoryview | None = None,
) -> None:
    """Insert `rows` (tuples in `columns` order) into `table` in the caller's transaction.

    `copy_text` (PostgreSQL only, instead of rows): the rows already in ``COPY``'s text
    format (tab-separated, ``\\N`` for NULL, one line each), written as they are: a caller
    that builds them column-wise makes no Python object per row.
    """
    if not rows and not copy_text:
        return
    if copy_text is not None and conn.dialect.name == "sqlite":
        raise ValueError("COPY text is for PostgreSQL")
    for name in columns:
        table.c[name]  # noqa: B018  (an unknown column is a bug: fail before writing)
    # Identifiers come from the table's metadata (checked above), never from input.
    names = ", ".join(columns)
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(columns))
        statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
    else:
        statement = f"COPY {table.name} ({names}) FROM STDIN"
    raw: Any = conn.connection.driver_connection
    try:
        if conn.dialect.name == "sqlite":
            cursor = raw.cursor()
            try:
                cursor.executemany(statement, rows)
            finally:
                cursor.close()
        else:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                if copy_text is not None:
                    copy.write(copy_text)
                for row in rows:
                    copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        # Translated like SQLAlchemy's own errors, so `Database.run` retries what it retries.
        raise DBAPIError.instance(
            statement, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc


def insert_with_ids(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """`insert_rows`, each row given a new ``id`` of `table`; the ids in the rows' order.

    PostgreSQL: the ids are taken from the table's sequence in one statement, then the rows
    are copied with them (a multi-row ``INSERT ... RETURNING`` is a new statement text for
    every row count, parsed by the driver each time). SQLite: the transaction holds the
    write lock (``BEGIN IMMEDIATE``) and rowids are max(rowid) + 1, so one executemany gets
    consecutive ids.
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        insert_rows(conn, table, columns, rows)
        last = int(conn.execute(select(func.max(table.c.id))).scalar_one())
        return list(range(last - len(rows) + 1, last + 1))
    ids = sorted(
        int(i)
        for i in conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) "
            "FROM generate_series(1, %(count)s)",
            {"table": table.name, "count": len(rows)},
        ).scalars()
    )
    insert_rows(
        conn, table, ["id", *columns], [(i, *row) for i, row in zip(ids, rows, strict=True)]
    )
    return ids


__all__ = ["insert_rows", "insert_with_ids", "json_text", "timestamp_param"]
