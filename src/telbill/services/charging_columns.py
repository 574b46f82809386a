"""CDR posting from columns: a chunk's plain calls rated, drained and written as arrays.

`charging.post_cdrs` builds a `UsageEvent` per record; a native CDR file posted with
`post_cdr_file_columns` reads blocks of columns instead (`adapters.formats.cdr_columns`)
and posts chunk by chunk (the same chunks, of `chunk_size` records in file order, as
`post_cdrs` cuts): the chunk's plain outbound calls (`RatedColumns`) are priced by the
batch rater of their plan and tariff version, their usage text (stored with the charge and
hashed to refuse a reused CDR id) is built from the fields, byte for byte the text of
`usage_text`, and their legs, charges and journal entries are written from arrays (SQLite
executemany, PostgreSQL ``COPY``). Every other record of the chunk — a bad line, an SMS, an
inbound call, a campaign, an unknown account, a plan with a carrier cost tariff, a call the
batch rater hands back — is read per row and rated by `charging`'s per-event path, and
posted in the same transaction, in file order with the others: the charges, postings and
balances are those of `post_cdrs` (tested both ways).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from telbill.adapters.db import bulk
from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdr_columns import (
    OUTBOUND,
    CdrBlock,
    NativeColumnsReader,
    iso_texts,
)
from telbill.adapters.formats.cdr_common import CdrRecord
from telbill.domain.batch import CdrColumns
from telbill.domain.batch import Status as BatchStatus
from telbill.domain.money import CALL_TIME
from telbill.domain.tariffs import Direction, Service
from telbill.errors import TelbillError
from telbill.services.accounts import Account
from telbill.services.clock import Clock
from telbill.services.plans import PlanRecord, TariffCache

I64 = npt.NDArray[np.int64]
_MICROS_PER_S = 1_000_000


@dataclass(slots=True)
class RatedColumns:
    """A chunk's calls priced from columns (one row per call, one leg each)."""

    line: I64
    cdr_id: pa.StringArray
    leaf_id: I64
    payer_id: I64
    plan_id: I64
    amount_micros: I64
    billed_s: I64
    tariff: pa.StringArray  # per row: tariff name and version, prefix of the pricing row
    tariff_version: I64
    prefix: pa.StringArray
    currency: pa.StringArray
    start_s: I64
    from_number: pa.StringArray
    usage_text: pa.StringArray
    usage_hash: list[str]
    payers: dict[int, Account]

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def take(self, keep: npt.NDArray[np.bool_]) -> RatedColumns:
        at = pa.array(np.flatnonzero(keep))
        positions = np.flatnonzero(keep).tolist()
        return RatedColumns(
            self.line[keep], self.cdr_id.take(at), self.leaf_id[keep], self.payer_id[keep],
            self.plan_id[keep], self.amount_micros[keep], self.billed_s[keep],
            self.tariff.take(at), self.tariff_version[keep],
            self.prefix.take(at), self.currency.take(at), self.start_s[keep],
            self.from_number.take(at), self.usage_text.take(at),
            [self.usage_hash[i] for i in positions], self.payers,
        )  # fmt: skip


# ---------------------------------------------------------------------------- rating


def rate_columns(
    db: Database, block: CdrBlock, cache: TariffCache, resolver: Any
) -> tuple[RatedColumns | None, npt.NDArray[np.intp]]:
    """Price the plain outbound calls of `block`; returns them and the positions of the
    block's rows to read and rate per row instead."""
    size = len(block)
    slow = np.zeros(size, dtype=np.bool_)
    if not size:
        return None, np.flatnonzero(slow)
    fields = block.fields
    slow |= ~plain_calls(block)
    account = fields.get("account", pa.array([""] * size, pa.string()))
    user = fields.get("user", pa.array([""] * size, pa.string()))
    keys = pc.dictionary_encode(pc.binary_join_element_wise(account, user, "\x00"))
    leaf_of_key: list[Account | None] = []
    with db.engine.connect() as conn:
        for key in keys.dictionary.to_pylist():
            name, _, user_name = key.partition("\x00")
            try:
                leaf_of_key.append(resolver.leaf_of(conn, name, user_name or None))
            except TelbillError:
                leaf_of_key.append(None)
        conn.rollback()
    key_index = np.asarray(keys.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    leaf_ids = np.array([-1 if a is None else a.id for a in leaf_of_key], dtype=np.int64)
    row_leaf = leaf_ids[key_index]
    slow |= row_leaf < 0
    plans: dict[int, PlanRecord] = {}
    payers: dict[int, Account] = {}
    for leaf in leaf_of_key:
        if leaf is None:
            continue
        plan = resolver.plan(leaf.id)
        plans[leaf.id] = plan
        payers[leaf.id] = resolver.payer(leaf.id)
    amount = np.zeros(size, dtype=np.int64)
    billed = np.zeros(size, dtype=np.int64)
    version_of = np.full(size, -1, dtype=np.int64)
    row_of = np.full(size, -1, dtype=np.int64)
    group_of = np.full(size, -1, dtype=np.int64)
    groups: list[tuple[str, str, pa.Array]] = []  # tariff, currency, prefixes of its rows
    start_us = block.start_s * _MICROS_PER_S
    # Grouped by plan (many leaves share one), not by leaf: one batch call per plan and
    # tariff version, whatever the number of accounts.
    by_plan: dict[int, PlanRecord] = {plan.id: plan for plan in plans.values()}
    known_leaves = np.array(sorted(plans), dtype=np.int64)
    plan_of_leaf = np.array([plans[int(k)].id for k in known_leaves], dtype=np.int64)
    currency_codes = sorted({payer.currency for payer in payers.values()})
    currency_of_leaf = np.array(
        [currency_codes.index(payers[int(k)].currency) for k in known_leaves], dtype=np.int64
    )
    at_leaf = np.clip(np.searchsorted(known_leaves, row_leaf), 0, max(len(known_leaves) - 1, 0))
    row_plan = np.where(row_leaf >= 0, plan_of_leaf[at_leaf] if len(known_leaves) else -1, -1)
    row_currency = currency_of_leaf[at_leaf] if len(known_leaves) else np.zeros(size, np.int64)
    for plan_id, plan in by_plan.items():
        mine = (row_plan == plan_id) & ~slow
        if not np.any(mine):
            continue
        if plan.plan.cost_tariff_name:
            slow |= mine  # the margin: costs are recorded by the per-event path
            continue
        try:
            versions = cache._versions_of(plan.tariff_ref)
        except TelbillError:
            slow |= mine
            continue
        assigned = np.full(size, -1, dtype=np.int64)
        for version, effective_from in versions:  # newest first
            free = mine & (assigned < 0)
            if effective_from is not None:
                free &= _epoch_us(effective_from) <= start_us
            assigned[free] = version
        slow |= mine & (assigned < 0)
        for version in np.unique(assigned[mine & (assigned >= 0)]).tolist():
            in_version = mine & (assigned == version)
            index = cache.index(plan.tariff_ref, version)
            if index.currency not in currency_codes or index.exact:
                # exact: numbers matched as given (CGRateS); digit columns cannot carry them
                slow |= in_version
                continue
            wrong = in_version & (row_currency != currency_codes.index(index.currency))
            slow |= wrong
            rows = np.flatnonzero(in_version & ~wrong)
            if not rows.shape[0]:
                continue
            rater = cache.batch_rater(
                plan.tariff_ref, version, plan, Service.VOICE, Direction.OUTBOUND
            )
            result = rater.rate(
                CdrColumns(
                    block.number[rows], block.ndigits[rows], block.duration_s[rows],
                    block.start_s[rows],
                )
            )  # fmt: skip
            good = (result.status == BatchStatus.OK) & (result.row >= 0)
            slow[rows[~good]] = True
            rows = rows[good]
            amount[rows] = result.cost_micros[good]
            billed[rows] = result.billed_s[good]
            version_of[rows] = version
            row_of[rows] = result.row[good]
            group_of[rows] = len(groups)
            groups.append((plan.tariff, index.currency, _prefixes(index)))
    fast = ~slow
    if not np.any(fast):
        return None, np.flatnonzero(slow)
    positions = np.flatnonzero(fast)
    at = pa.array(positions)
    leaf = row_leaf[positions]
    usage = usage_texts(block, positions, leaf_of_key, key_index[positions])
    sha256 = hashlib.sha256
    hashes = [sha256(text).hexdigest() for text in _buffers_of(usage)]
    rated = RatedColumns(
        line=block.line[positions],
        cdr_id=fields["id"].take(at),
        leaf_id=leaf,
        payer_id=_mapped(leaf, {k: a.id for k, a in payers.items()}),
        plan_id=_mapped(leaf, {k: plan.id for k, plan in plans.items()}),
        amount_micros=amount[positions],
        billed_s=billed[positions],
        tariff=pa.array([g[0] for g in groups], pa.string()).take(pa.array(group_of[positions])),
        tariff_version=version_of[positions],
        prefix=_grouped_prefixes(groups, group_of[positions], row_of[positions]),
        currency=pa.array([g[1] for g in groups], pa.string()).take(pa.array(group_of[positions])),
        start_s=block.start_s[positions],
        from_number=fields["from"].take(at) if "from" in fields
        else pa.array([""] * len(positions), pa.string()),
        usage_text=usage,
        usage_hash=hashes,
        payers={payer.id: payer for payer in payers.values()},
    )  # fmt: skip
    return rated, np.flatnonzero(slow)


def _mapped(keys: I64, mapping: dict[int, int]) -> I64:
    """`mapping[k]` for each k of `keys` (all present), without a Python call per key."""
    known = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[int(k)] for k in known], dtype=np.int64)
    found: I64 = values[np.searchsorted(known, keys)]
    return found


_PREFIXES: dict[int, tuple[Any, pa.Array]] = {}


def _prefixes(index: Any) -> pa.Array:
    """The prefix of each row of a compiled tariff, as an Arrow array (kept per index)."""
    found = _PREFIXES.get(id(index))
    if found is None or found[0] is not index:
        found = (index, pa.array([row.prefix for row in index.tariff.rows], pa.string()))
        if len(_PREFIXES) > 64:
            _PREFIXES.clear()
        _PREFIXES[id(index)] = found
    return found[1]


def _grouped_prefixes(
    groups: list[tuple[str, str, pa.Array]], group: I64, row: I64
) -> pa.StringArray:
    """The prefix of each call's pricing row (its group's tariff rows taken at `row`)."""
    if len(groups) == 1:
        taken: pa.StringArray = groups[0][2].take(pa.array(row))
        return taken
    parts = []
    positions = []
    for k, (_, _, prefixes) in enumerate(groups):
        mine = np.flatnonzero(group == k)
        parts.append(prefixes.take(pa.array(row[mine])))
        positions.append(mine)
    order = np.argsort(np.concatenate(positions), kind="stable")
    joined: pa.StringArray = pa.concat_arrays(parts).take(pa.array(order))
    return joined


def plain_calls(block: CdrBlock) -> npt.NDArray[np.bool_]:
    """The rows of `block` whose usage text can be joined from the fields: outbound calls
    without a campaign whose texts need no JSON escape, with an account."""
    plain: npt.NDArray[np.bool_] = block.direction == OUTBOUND
    fields = block.fields
    if "campaign" in fields:
        plain &= _lengths(fields["campaign"]) == 0
    for name in ("id", "account", "user", "from", "to"):
        if name in fields:
            plain &= ~_not_plain_json(fields[name])
    if "account" in fields:
        plain &= _lengths(fields["account"]) > 0  # the per-row path names a missing one
    else:
        plain[:] = False
    return plain


def _epoch_us(moment: datetime) -> int:
    from telbill.adapters.formats.cdr_columns import _EPOCH

    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICROS_PER_S + delta.microseconds


def _lengths(column: pa.StringArray) -> I64:
    lengths: I64 = np.asarray(pc.binary_length(column).to_numpy(zero_copy_only=False), np.int64)
    return lengths


def _not_plain_json(column: pa.StringArray) -> npt.NDArray[np.bool_]:
    """Values JSON would escape (anything outside printable ASCII, a backslash or a quote):
    their usage text is built per row."""
    found = pc.match_substring_regex(column, r'[^\x20-\x7e]|\\|"')
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _buffers_of(column: pa.StringArray) -> list[bytes]:
    """Each value of `column` as bytes (what is hashed)."""
    values: list[bytes] = column.cast(pa.binary()).to_pylist()
    return values


# ---------------------------------------------------------------------------- usage text


def _iso(seconds: I64) -> pa.StringArray:
    """``datetime.isoformat()`` of aware UTC whole seconds: ``2026-03-02T09:00:00+00:00``."""
    return iso_texts(seconds)


def _quoted(column: pa.StringArray) -> pa.StringArray:
    joined: pa.StringArray = pc.binary_join_element_wise('"', column, '"', "")
    return joined


def _or_null(column: pa.StringArray, present: npt.NDArray[np.bool_]) -> pa.StringArray:
    chosen: pa.StringArray = pc.if_else(pa.array(present), column, "null")
    return chosen


def usage_texts(
    block: CdrBlock, positions: npt.NDArray[np.intp], leaves: Sequence[Any], keys: I64
) -> pa.StringArray:
    """`charging.usage_text` of the plain outbound calls at `positions`, from the fields
    (values checked plain: no JSON escape needed)."""
    at = pa.array(positions)
    fields = block.fields
    size = len(positions)
    blank = pa.array([""] * size, pa.string())

    def field(name: str) -> pa.StringArray:
        return fields[name].take(at) if name in fields else blank

    answer = block.answer_s[positions]
    end = block.end_s[positions]
    given = block.given_duration[positions]
    has_answer = answer >= 0
    duration_given = has_answer & (given >= 0)
    user, from_ = field("user"), field("from")
    parts = [
        '{"account":', _quoted(field("account")),
        ',"answer":', _or_null(_quoted(_iso(np.maximum(answer, 0))), has_answer),
        ',"call_class":null,"call_segments":[],"direction":"outbound","duration_s":',
        _or_null(pc.cast(pa.array(given), pa.string()), duration_given),
        ',"end":', _quoted(_iso(end)),
        ',"from":', _or_null(_quoted(from_), _lengths(from_) > 0),
        ',"id":', _quoted(field("id")),
        ',"segments":null,"service":"voice","speech_s":0,"start":',
        _quoted(_iso(block.start_s[positions])),
        ',"text":null,"to":', _quoted(field("to")),
        ',"user":', _or_null(_quoted(user), _lengths(user) > 0), "}",
    ]  # fmt: skip
    text: pa.StringArray = pc.binary_join_element_wise(*parts, "")
    return text


# ---------------------------------------------------------------------------- posting


def write_fast_charges(
    conn: Connection,
    fast: RatedColumns,
    due: I64,
    transaction: I64,
    *,
    source: str,
    now: datetime,
    explanation_of_plan: dict[int, str],
) -> None:
    """The charge rows of the fast calls, from their columns."""
    size = len(fast)
    if not size:
        return
    explanation = pa.array(
        [explanation_of_plan[int(p)] for p in np.unique(fast.plan_id).tolist()], pa.string()
    )
    plan_index = np.searchsorted(np.unique(fast.plan_id), fast.plan_id)
    explanations = explanation.take(pa.array(plan_index))
    tariff = fast.tariff
    if conn.dialect.name == "postgresql":
        _copy_fast_charges(conn, fast, due, transaction, source, now, explanations, tariff)
        return
    stamp = bulk.timestamp_param(conn)
    created_at = stamp(now)
    occurred = iso_texts(fast.start_s, " ", ".000000").to_pylist()
    transactions = [None if t < 0 else t for t in transaction.tolist()]
    rows = zip(
        fast.cdr_id.to_pylist(), _repeat("call", size), _repeat(0, size),
        fast.leaf_id.tolist(), fast.payer_id.tolist(), _repeat("voice", size),
        _repeat("outbound", size), due.tolist(), fast.currency.to_pylist(),
        _repeat(CALL_TIME, size), fast.billed_s.tolist(), _repeat(0, size), tariff.to_pylist(),
        fast.tariff_version.tolist(), fast.prefix.to_pylist(), explanations.to_pylist(),
        fast.usage_text.to_pylist(), fast.usage_hash, transactions, _repeat(source, size),
        occurred, _repeat(created_at, size), _repeat(None, size), _repeat(None, size),
        strict=True,
    )  # fmt: skip
    from telbill.services.charging import CHARGE_COLUMNS

    bulk.insert_rows(conn, charges, CHARGE_COLUMNS, list(rows))


def _repeat(value: Any, size: int) -> list[Any]:
    return [value] * size


def _copy_text(value: str) -> str:
    """`value` escaped for COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_escaped(column: pa.StringArray) -> pa.StringArray:
    """`_copy_text` of each value, once per distinct value (tariff names, currencies)."""
    encoded = pc.dictionary_encode(column)
    escaped = pa.array([_copy_text(v) for v in encoded.dictionary.to_pylist()], pa.string())
    taken: pa.StringArray = escaped.take(encoded.indices)
    return taken


def _copy_fast_charges(
    conn: Connection,
    fast: RatedColumns,
    due: I64,
    transaction: I64,
    source: str,
    now: datetime,
    explanations: pa.StringArray,
    tariff: pa.StringArray,
) -> None:
    """PostgreSQL: the rows as COPY text built column-wise (no Python object per row)."""
    from telbill.services.charging import CHARGE_COLUMNS

    def text(values: I64) -> pa.StringArray:
        cast: pa.StringArray = pc.cast(pa.array(values), pa.string())
        return cast

    occurred = iso_texts(fast.start_s, " ", "+00")
    created = now.astimezone().isoformat(" ")
    tx = pc.if_else(pa.array(transaction >= 0), text(transaction), "\\N")
    tariff, currency = _copy_escaped(tariff), _copy_escaped(fast.currency)
    parts = [
        fast.cdr_id, "call", "0", text(fast.leaf_id), text(fast.payer_id), "voice", "outbound",
        text(due), currency, CALL_TIME, text(fast.billed_s), "0", tariff,
        text(fast.tariff_version), fast.prefix, explanations, fast.usage_text,
        pa.array(fast.usage_hash, pa.string()), tx, _copy_text(source), occurred, created,
        "\\N", "\\N",
    ]  # fmt: skip
    lines = pc.binary_join_element_wise(*parts, "\t")
    body = pc.binary_join_element_wise(lines, "\n", "")
    buffers = body.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)
    data = memoryview(buffers[2])[int(offsets[body.offset]) : int(offsets[body.offset + len(body)])]
    bulk.insert_rows(conn, charges, CHARGE_COLUMNS, [], copy_text=data)


def traffic_numbers(fast: RatedColumns, fresh: npt.NDArray[np.bool_]) -> set[str]:
    """E.164 of the callers of the new fast calls (our side of an outbound call)."""
    from telbill.services.charging import _our_side_number

    found: set[str] = set()
    values = fast.from_number.filter(pa.array(fresh))
    for number in pc.unique(values).to_pylist():
        if number:
            e164 = _our_side_number(number)
            if e164 is not None:
                found.add(e164)
    return found


# ---------------------------------------------------------------------------- files


def post_cdr_file_columns(
    db: Database,
    path: Path,
    *,
    clock: Clock,
    source: str,
    chunk_size: int,
    timezone: str | None = None,
    within: int | None = None,
    poster: int | None = None,
    keep_chunk: Callable[[int], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    on_chunk: Callable[[Any], None] | None = None,
) -> Any:
    """Post a native CDR file read as columns (module rules); None when the file's header
    is not one the column reader takes (the caller then posts it per row).

    `keep_chunk`: given a chunk's 0-based index in the file, whether this process posts it
    (a worker's share; the others are skipped after reading)."""
    from telbill.services.charging import (
        AccountResolver,
        PostSummary,
        _fewer_collections,
        post_chunk,
    )

    reader = NativeColumnsReader(path, timezone=timezone)
    reader.read_header()
    if not reader.columnar:
        return None
    cache = TariffCache(db)
    resolver = AccountResolver(within, poster=poster)
    total = PostSummary()
    with _fewer_collections():
        for index, fast, slow in _chunks(reader, chunk_size, progress):
            if keep_chunk is not None and not keep_chunk(index):
                continue
            result = post_chunk(
                db, slow, cache=cache, clock=clock, source=source, resolver=resolver,
                columns=fast, reader=reader,
            )  # fmt: skip
            total.add(result)
            if on_chunk is not None:
                on_chunk(result)
    return total


def _chunks(
    reader: NativeColumnsReader, chunk_size: int, progress: Callable[[int], None] | None
) -> Any:
    """(chunk index, fast rows, per-row records) for each chunk of `chunk_size` records in
    file order (as `post_cdrs` cuts them: a blank line is no record)."""
    index = 0
    pending: list[tuple[CdrBlock, list[CdrRecord]]] = []
    pending_count = 0
    for block in reader.blocks():
        if progress is not None:
            progress(block.bytes_read)
        records = sorted(reader.slow_records(block.slow, block.records), key=_line_of)
        lines = np.concatenate(
            [block.line, np.array([_line_of(r) for r in records], dtype=np.int64)]
        )
        order = np.argsort(lines, kind="stable")
        fast_count = len(block)
        start = 0
        while start < order.shape[0]:
            piece = order[start : start + chunk_size - pending_count]
            start += piece.shape[0]
            keep = np.zeros(fast_count, dtype=np.bool_)
            keep[piece[piece < fast_count]] = True
            items = [records[p - fast_count] for p in piece[piece >= fast_count].tolist()]
            pending.append((block.take(keep), items))
            pending_count += piece.shape[0]
            if pending_count >= chunk_size:
                yield (index, *_joined(pending))
                index += 1
                pending, pending_count = [], 0
    if pending_count:
        yield (index, *_joined(pending))


def _line_of(record: CdrRecord) -> int:
    return record.line or 0


def _joined(
    parts: list[tuple[CdrBlock, list[CdrRecord]]],
) -> tuple[CdrBlock, list[CdrRecord]]:
    items = [item for _, part_items in parts for item in part_items]
    if len(parts) == 1:
        return parts[0][0], items
    return CdrBlock.concat([block for block, _ in parts]), items


__all__ = ["RatedColumns", "post_cdr_file_columns", "rate_columns", "usage_texts"]
