"""Baseline for `telbill rate`: the same job done by a plain Python script (csv module +
numpy), as someone would write it without telbill.

Reads a native CDR CSV (``id,account,user,direction,from,to,start,answer,end``) with
`csv.reader`, parses the ISO 8601 times with `datetime.fromisoformat`, rates the calls with
numpy against an ASTPP-style deck (``prefix,destination,connect_fee,included_seconds,
rate_per_minute,increment_seconds``: longest prefix match by one `searchsorted` per prefix
length, increments, costs in integer micro-units rounded half up) and writes the input
columns plus ``cost,currency,billed_seconds,prefix,destination,rate,error`` with
`csv.writer`. It does not check what telbill checks (bad rows, versions, time zones...).

    python benchmarks/rate_baseline_csv_numpy.py DECK.csv CDRS.csv OUT.csv
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from decimal import Decimal

import numpy as np

CHUNK = 100_000


def load_deck(path: str) -> dict[str, np.ndarray]:
    prefixes, names, rates, connects, frees, steps, texts = [], [], [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            prefixes.append(row["prefix"])
            names.append(row["destination"])
            rates.append(int(Decimal(row["rate_per_minute"]) * 10**7))
            connects.append(int(Decimal(row["connect_fee"] or "0") * 10**7))
            frees.append(int(row["included_seconds"] or 0))
            steps.append(int(row["increment_seconds"] or 6))
            texts.append(row["rate_per_minute"])
    order = np.argsort([int(p) for p in prefixes])
    return {
        "prefix": np.array(prefixes, dtype=object)[order],
        "key": np.array([int(p) for p in prefixes], dtype=np.int64)[order],
        "length": np.array([len(p) for p in prefixes], dtype=np.int64)[order],
        "name": np.array(names, dtype=object)[order],
        "rate": np.array(rates, dtype=np.int64)[order],  # per minute, 10^-7
        "connect": np.array(connects, dtype=np.int64)[order],
        "free": np.array(frees, dtype=np.int64)[order],
        "step": np.array(steps, dtype=np.int64)[order],
        "text": np.array(texts, dtype=object)[order],
    }


def match(deck: dict[str, np.ndarray], numbers: list[str]) -> np.ndarray:
    """Row of the longest matching prefix of each number (-1: none)."""
    found = np.full(len(numbers), -1, dtype=np.int64)
    for length in sorted(set(deck["length"].tolist()), reverse=True):
        rows = np.flatnonzero(deck["length"] == length)
        keys = deck["key"][rows]
        heads = np.array([int(n[:length]) if len(n) >= length else -1 for n in numbers])
        at = np.clip(np.searchsorted(keys, heads), 0, len(keys) - 1)
        hit = (keys[at] == heads) & (found < 0)
        found[hit] = rows[at[hit]]
    return found


def rate_chunk(deck: dict[str, np.ndarray], rows: list[list[str]], writer: object) -> None:
    numbers, durations = [], []
    for row in rows:
        numbers.append(row[5].lstrip("+"))
        answer, end = row[7], row[8]
        if answer:
            seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(answer)).seconds
        else:
            seconds = 0
        durations.append(seconds)
    for row in rows:  # the start is parsed too (telbill prices by the version in force)
        datetime.fromisoformat(row[6])
    found = match(deck, numbers)
    duration = np.array(durations, dtype=np.int64)
    safe = np.maximum(found, 0)
    step = deck["step"][safe]
    chargeable = np.maximum(duration - deck["free"][safe], 0)
    billed = (chargeable + step - 1) // step * step
    numerator = deck["rate"][safe] * billed + np.where(duration > 0, deck["connect"][safe] * 60, 0)
    micros = (numerator + 300) // 600  # 10^-7 per minute -> 10^-6: / 60 / 10, half up
    out = writer.writerow  # type: ignore[attr-defined]
    for i, row in enumerate(rows):
        k = int(found[i])
        if k < 0:
            out([*row, "", "", "", "", "", "", "no rate"])
            continue
        units, fraction = divmod(int(micros[i]), 1_000_000)
        out([*row, f"{units}.{fraction:06d}", "USD", int(billed[i]), deck["prefix"][k],
             deck["name"][k], deck["text"][k], ""])  # fmt: skip


def main() -> None:
    deck_path, cdr_path, out_path = sys.argv[1:4]
    deck = load_deck(deck_path)
    with open(cdr_path, newline="", encoding="utf-8") as source, \
            open(out_path, "w", newline="", encoding="utf-8") as sink:  # fmt: skip
        reader = csv.reader(source)
        writer = csv.writer(sink)
        header = next(reader)
        writer.writerow([*header, "cost", "currency", "billed_seconds", "prefix",
                         "destination", "rate", "error"])  # fmt: skip
        chunk: list[list[str]] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                rate_chunk(deck, chunk, writer)
                chunk = []
        if chunk:
            rate_chunk(deck, chunk, writer)


if __name__ == "__main__":
    main()
