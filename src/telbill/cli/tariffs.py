"""CLI commands of the tariffs area: `telbill tariff import|list|show|versions|diff`.

Thin: parse options, stream the file through a format reader into the tariff service, render.
A deck with any bad row is reported line by line and nothing is imported (exit 1) unless
`--skip-bad`. `--provider ID` acts in that provider's catalogue (its own tariffs and the
operator's shared retail ones); without it, in the operator's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from telbill.adapters.db.engine import Database, database_url, migrate
from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.adapters.formats.tariff_csv import parse_column_pairs, read_tariff_csv
from telbill.adapters.formats.tariff_fields import (
    ParsedRow,
    RateValues,
    parse_datetime,
    zone,
)
from telbill.adapters.formats.twilio import read_twilio_csv
from telbill.cli.files import LimitedLines, input_path
from telbill.domain.tariffs import BAND_RULES, Increment, RateRow, RowError, TariffSettings
from telbill.errors import InvalidInput, TelbillError
from telbill.services.tariffs import (
    BadTariffRows,
    ImportResult,
    TariffSource,
    TariffVersion,
    diff_versions,
    import_tariff,
    list_tariffs,
    list_versions,
    load_tariff,
    provider_viewer,
)

tariff_app = typer.Typer(help="Import, list, show and compare tariffs (rate decks).")
out = Console()
err = Console(stderr=True)

EXIT_ERROR = 1
FORMATS = ("native", "twilio", "cgrates")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(tariff_app, name="tariff")


def _db() -> Database:
    url = database_url()
    migrate(url)
    return Database(url)


def _provider_option() -> Any:
    return typer.Option(
        None, "--provider", help="Provider account id: its catalogue (default: the operator's)."
    )


def _viewer(db: Database, provider: int | None) -> Any:
    """The catalogue `--provider` names (the operator's without it)."""
    return _guard(lambda: provider_viewer(db, provider))


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_ERROR)


def _rounding(text: str) -> str:
    upper = text.strip().upper().replace("-", "_")
    return upper if upper.startswith("ROUND_") else f"ROUND_{upper}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _data_lines(file: Path) -> int:
    """The lines of `file` after its header (a fast count of newlines, 1 MB at a time): the
    progress bar's total, as rows are counted when stored."""
    count = 0
    last = b"\n"
    with file.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return max(count + (last != b"\n") - 1, 1)


def _rows(items: Iterable[ParsedRow | RowError]) -> Iterator[RateRow | RateValues | RowError]:
    """Reader items -> what import_tariff stores: a row's storage values when the reader has
    them (no RateRow is built), else its RateRow."""
    for item in items:
        if isinstance(item, ParsedRow):
            yield item.row if item.values is None else item.values
        else:
            yield item


def _error_line(error: RowError) -> str:
    if error.line == 0:  # a whole-file problem (missing file, conflicting profiles)
        return f"{error.source}: {error.reason}"
    where = f"{error.source} line {error.line}" if error.source else f"line {error.line}"
    return f"{where}: {error.reason}"


def _report_bad_rows(errors: list[RowError], *, imported: bool) -> None:
    for error in errors:
        err.print(_error_line(error), markup=False, highlight=False, soft_wrap=True)
    if imported:
        err.print(f"skipped {len(errors)} bad row(s)", markup=False)
    else:
        err.print(f"{len(errors)} bad row(s): nothing imported", markup=False)


@tariff_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="CSV file, or a CGRateS tariff-plan folder."),
    name: str = typer.Option(
        None, "--name", help="Tariff name (CGRateS: import only this TENANT:CATEGORY:SUBJECT)."
    ),
    file_format: str = typer.Option("native", "--format", help="native, twilio or cgrates."),
    column_map: str = typer.Option(None, "--map", help="COLUMN=HEADER,... for other CSVs."),
    defaults: str = typer.Option(None, "--default", help="COLUMN=VALUE,... for empty cells."),
    currency: str = typer.Option("USD", "--currency"),
    increment: str = typer.Option("60/60", "--increment", help="Default increment."),
    timezone: str = typer.Option("UTC", "--timezone"),
    decimals: int = typer.Option(6, "--decimals", help="Decimals of each charge."),
    rounding: str = typer.Option("half_up", "--rounding", help="half_up, half_even, up..."),
    max_call_length: int = typer.Option(3600, "--max-call-length", help="Seconds."),
    effective_from: str = typer.Option(None, "--effective-from", help="ISO date/time."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Import the good rows anyway."),
    as_json: bool = typer.Option(False, "--json"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="CGRateS: report what the folder would import; write nothing."
    ),
    band_rule: str = typer.Option(
        None,
        "--band-rule",
        help="A call crossing a time band: price_at_start (native default) or "
        "split_at_band_change (CGRateS default).",
    ),
    provider: int = _provider_option(),
    cost: bool = typer.Option(False, "--cost", help="A carrier cost deck (provider admins only)."),
) -> None:
    """Import a rate deck as a new version of a tariff."""
    # A dry run reads the folder only: no database is opened.
    owner = None if dry_run else _viewer(_db(), provider).provider
    purpose = "cost" if cost else "retail"
    try:
        if dry_run and file_format != "cgrates":
            raise _fail("--dry-run applies to --format cgrates")
        if file_format not in FORMATS:
            raise _fail(f"--format must be one of {', '.join(FORMATS)}")
        input_path(file, folder_ok=file_format == "cgrates")
        if file_format != "cgrates" and not name:
            raise _fail("--name is required")
        settings = TariffSettings(
            currency=currency,
            default_increment=Increment.parse(increment),
            timezone=timezone,
            decimals=decimals,
            rounding=_rounding(rounding),
            max_call_s=max_call_length,
        )
        if band_rule is not None:
            if band_rule not in BAND_RULES:
                raise _fail(f"--band-rule must be one of {', '.join(BAND_RULES)}")
            settings = replace(settings, band_rule=band_rule)
        since = (
            parse_datetime(effective_from, "--effective-from", zone(timezone))
            if effective_from
            else None
        )
        source = TariffSource(str(file), _sha256(file), file_format)
        if file_format == "cgrates" and dry_run:
            _dry_run_cgrates(file, name, settings, skip_bad, as_json)
            return
        if file_format == "cgrates":
            results = _import_cgrates(
                file, name, settings, source, since, skip_bad, owner, purpose,
                band_rule=band_rule,
            )
        else:
            results = [
                _import_csv(
                    file, name, file_format, column_map, defaults, settings, source, since,
                    skip_bad, owner, purpose,
                )
            ]
    except BadTariffRows as exc:
        _report_bad_rows(exc.errors, imported=False)
        raise typer.Exit(EXIT_ERROR) from None
    except TelbillError as exc:
        raise _fail(exc.message) from None
    skipped = [e for result in results for e in result.skipped]
    if skipped:
        _report_bad_rows(skipped, imported=True)
    if as_json:
        payload = [
            {**_version_json(r.version), "skipped": [_error_json(e) for e in r.skipped]}
            for r in results
        ]
        typer.echo(json.dumps(payload if file_format == "cgrates" else payload[0]))
        return
    for result in results:
        v = result.version
        out.print(
            f"imported {v.name} version {v.version}: {v.row_count} rates ({v.currency})",
            markup=False,
            highlight=False,
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _import_csv(
    file: Path,
    name: str,
    file_format: str,
    column_map: str | None,
    defaults: str | None,
    settings: TariffSettings,
    source: TariffSource,
    since: datetime | None,
    skip_bad: bool,
    owner: int | None = None,
    purpose: str = "retail",
) -> ImportResult:
    mapping = parse_column_pairs(column_map, "--map")
    default_values = parse_column_pairs(defaults, "--default")
    if file_format == "twilio" and mapping:
        raise _fail("--map applies to native/other CSV files, not to Twilio's fixed layout")
    db = _db()
    with (
        file.open(newline="", encoding="utf-8-sig") as handle,
        _progress() as progress,
    ):
        # The bar counts rows stored (reading runs ahead of storing by a chunk only).
        task = progress.add_task(f"importing {file.name}", total=_data_lines(file))
        lines: Iterable[str] = LimitedLines(handle, str(file))
        if file_format == "twilio":
            items = read_twilio_csv(lines, defaults=default_values, source="")
        else:
            items = read_tariff_csv(
                lines, column_map=mapping, defaults=default_values, timezone=settings.timezone
            )
        return import_tariff(
            db,
            name,
            _rows(items),
            settings,
            source,
            now=datetime.now(UTC),
            effective_from=since,
            skip_bad=skip_bad,
            on_progress=lambda rows: progress.update(task, completed=rows),
            owner=owner,
            purpose=purpose,
        )


def _import_cgrates(
    folder: Path,
    name: str | None,
    settings: TariffSettings,
    source: TariffSource,
    since: datetime | None,
    skip_bad: bool,
    owner: int | None = None,
    purpose: str = "retail",
    *,
    band_rule: str | None = None,
) -> list[ImportResult]:
    """Import the folder's profiles; `band_rule`, when given, replaces CGRateS's split."""
    plan = read_cgrates_folder(folder, timezone=settings.timezone)
    if plan.errors and not skip_bad:
        raise BadTariffRows(plan.errors)
    names = sorted(plan.tariffs)
    if name:
        if name not in plan.tariffs:
            raise _fail(f"no rating profile {name!r} in {folder}; found {', '.join(names)}")
        names = [name]
    if not names:
        raise _fail(f"no rating profiles in {folder}")
    db = _db()
    results = []
    not_imported: list[RowError] = []
    for tariff_name in names:
        try:
            result = import_tariff(
                db,
                tariff_name,
                plan.tariffs[tariff_name],
                plan.settings_for(tariff_name, settings, band_rule=band_rule),
                source,
                now=datetime.now(UTC),
                effective_from=since,
                skip_bad=skip_bad,
                owner=owner,
                purpose=purpose,
            )
        except InvalidInput as exc:
            if not skip_bad:
                raise
            # --skip-bad: a profile with no good rows is listed, the others still import.
            not_imported.append(
                RowError(0, f"{tariff_name} not imported: {exc.message}", "RatingProfiles.csv")
            )
            continue
        results.append(result)
    if not results:
        raise BadTariffRows([*plan.errors, *not_imported])
    skipped = (*plan.errors, *not_imported)
    if skipped:
        first = results[0]
        results[0] = ImportResult(first.version, skipped + first.skipped)
    return results


def _dry_run_cgrates(
    folder: Path, name: str | None, settings: TariffSettings, skip_bad: bool, as_json: bool
) -> None:
    """What `import --format cgrates` would do with `folder`, without a database."""
    plan = read_cgrates_folder(folder, timezone=settings.timezone)
    names = sorted(plan.tariffs)
    if name:
        if name not in plan.tariffs:
            raise _fail(f"no rating profile {name!r} in {folder}; found {', '.join(names)}")
        names = [name]
    refused = bool(plan.errors) and not skip_bad
    importable = [n for n in names if plan.tariffs[n]]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tariffs": [
                        {
                            "name": n,
                            "rows": len(plan.tariffs[n]),
                            "number_match": plan.settings_for(n, settings).number_match,
                        }
                        for n in names
                    ],
                    "errors": [_error_json(e) for e in plan.errors],
                    "would_import": [] if refused else importable,
                }
            )
        )
    else:
        for error in plan.errors:
            err.print(_error_line(error), markup=False, highlight=False, soft_wrap=True)
        for tariff_name in names:
            count = len(plan.tariffs[tariff_name])
            verdict = "would import" if count and not refused else "would not import"
            out.print(
                f"{verdict} {tariff_name}: {count} rates", markup=False, highlight=False
            )
        if plan.errors:
            err.print(
                f"{len(plan.errors)} bad row(s)"
                + ("" if skip_bad else ": nothing would be imported without --skip-bad"),
                markup=False,
            )
    if refused:
        raise typer.Exit(EXIT_ERROR)


# --- rendering -----------------------------------------------------------------------------


def _error_json(error: RowError) -> dict[str, Any]:
    return {"line": error.line, "reason": error.reason, "source": error.source}


def _version_json(v: TariffVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "currency": v.currency,
        "rows": v.row_count,
        "created_at": v.created_at.isoformat(),
        "effective_from": v.effective_from.isoformat() if v.effective_from else None,
        "owner": v.owner_id,
        "purpose": v.purpose,
        "settings": {
            "default_increment": str(v.settings.default_increment),
            "timezone": v.settings.timezone,
            "decimals": v.settings.decimals,
            "rounding": v.settings.rounding,
            "max_call_s": v.settings.max_call_s,
            "number_match": v.settings.number_match,
            "free_extensions": v.settings.free_extensions,
            "band_rule": v.settings.band_rule,
        },
        "source": {"file": v.source.file, "sha256": v.source.sha256, "format": v.source.format},
    }


def _decimal(value: Any) -> str:
    return f"{value:f}"


def row_json(row: RateRow) -> dict[str, Any]:
    """A rate row as JSON-ready values (money as decimal strings)."""
    return {
        "prefix": row.prefix,
        "destination": row.destination,
        "service": row.service.value,
        "direction": row.direction.value,
        "number_type": row.number_type.value,
        "rate": _decimal(row.rate),
        "connect_fee": _decimal(row.connect_fee),
        "increment": str(row.increment) if row.increment else None,
        "min_seconds": row.min_seconds,
        "free_seconds": row.free_seconds,
        "effective_from": row.effective_from.isoformat() if row.effective_from else None,
        "effective_to": row.effective_to.isoformat() if row.effective_to else None,
        "weekdays": sorted(row.weekdays) if row.weekdays is not None else None,
        "hours": (
            f"{row.hours[0]:%H:%M}-{row.hours[1]:%H:%M}" if row.hours is not None else None
        ),
        "tiers": [
            {"start_s": t.start_s, "rate": _decimal(t.rate), "increment": str(t.increment)}
            for t in row.tiers
        ],
        "decimals": row.decimals,
        "rounding": row.rounding,
    }


def _rows_table(rows: Iterable[RateRow], title: str) -> Table:
    table = Table(title=title)
    for column in ("prefix", "destination", "service", "direction", "type", "rate", "connect",
                   "increment", "band", "from"):
        table.add_column(column)
    for row in rows:
        band = ""
        if row.weekdays is not None or row.hours is not None:
            days = ",".join(str(d) for d in sorted(row.weekdays or ()))
            hours = f"{row.hours[0]:%H:%M}-{row.hours[1]:%H:%M}" if row.hours else ""
            band = f"{days} {hours}".strip()
        table.add_row(
            row.prefix,
            row.destination,
            row.service.value,
            row.direction.value,
            row.number_type.value,
            _decimal(row.rate) + (" +tiers" if row.tiers else ""),
            _decimal(row.connect_fee),
            str(row.increment) if row.increment else "default",
            band,
            row.effective_from.isoformat() if row.effective_from else "",
        )
    return table


def _guard(fn: Any) -> Any:
    """Turn TelbillErrors of a read command into a one-line error and exit 1."""
    try:
        return fn()
    except TelbillError as exc:
        raise _fail(exc.message) from None


@tariff_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json"), provider: int = _provider_option()
) -> None:
    """Every tariff with its newest version."""
    db = _db()
    viewer = _viewer(db, provider)
    versions = _guard(lambda: list_tariffs(db, viewer))
    if as_json:
        typer.echo(json.dumps([_version_json(v) for v in versions]))
        return
    table = Table(title="tariffs")
    for column in ("name", "version", "currency", "rows", "effective from", "created"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            v.currency,
            str(v.row_count),
            v.effective_from.isoformat() if v.effective_from else "",
            v.created_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@tariff_app.command("versions")
def versions_command(
    name: str, as_json: bool = typer.Option(False, "--json"), provider: int = _provider_option()
) -> None:
    """Every version of a tariff, oldest first."""
    db = _db()
    viewer = _viewer(db, provider)
    versions = _guard(lambda: list_versions(db, name, viewer))
    if as_json:
        typer.echo(json.dumps([_version_json(v) for v in versions]))
        return
    table = Table(title=f"versions of {name}")
    for column in ("version", "rows", "effective from", "created", "source", "sha256"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version),
            str(v.row_count),
            v.effective_from.isoformat() if v.effective_from else "",
            v.created_at.isoformat(timespec="seconds"),
            f"{v.source.format}:{Path(v.source.file).name}" if v.source.file else v.source.format,
            v.source.sha256[:12],
        )
    out.print(table)


@tariff_app.command("show")
def show_command(
    name: str,
    version: int = typer.Option(None, "--version", help="Default: the newest."),
    prefix: str = typer.Option(None, "--prefix", help="Only rows whose prefix starts so."),
    limit: int = typer.Option(50, "--limit", help="Rows to show; 0 shows all."),
    as_json: bool = typer.Option(False, "--json"),
    provider: int = _provider_option(),
) -> None:
    """A tariff's settings and rates."""
    db = _db()
    viewer = _viewer(db, provider)
    tariff = _guard(lambda: load_tariff(db, name, version, viewer=viewer))
    meta = _guard(lambda: list_versions(db, name, viewer))
    info = next(v for v in meta if v.version == tariff.version)
    rows = [r for r in tariff.rows if not prefix or r.prefix.startswith(prefix)]
    shown = rows if limit == 0 else rows[:limit]
    if as_json:
        payload = {**_version_json(info), "matching_rows": len(rows)}
        payload["rates"] = [row_json(r) for r in shown]
        typer.echo(json.dumps(payload))
        return
    s = tariff.settings
    out.print(
        f"{name} version {tariff.version}: {info.row_count} rates in {s.currency}, "
        f"default increment {s.default_increment}, timezone {s.timezone}, "
        f"{s.decimals} decimals {s.rounding}, max call {s.max_call_s} s",
        markup=False,
        highlight=False,
    )
    out.print(_rows_table(shown, f"{len(shown)} of {len(rows)} rates"))


@tariff_app.command("diff")
def diff_command(
    name: str,
    from_version: int = typer.Option(None, "--from", help="Default: the one before --to."),
    to_version: int = typer.Option(None, "--to", help="Default: the newest."),
    as_json: bool = typer.Option(False, "--json"),
    provider: int = _provider_option(),
) -> None:
    """Rates added, removed and changed between two versions of a tariff."""
    db = _db()
    viewer = _viewer(db, provider)
    versions = [v.version for v in _guard(lambda: list_versions(db, name, viewer))]
    to_v = to_version if to_version is not None else versions[-1]
    from_v = from_version if from_version is not None else to_v - 1
    if from_v < 1:
        raise _fail(f"{name} has only version {to_v}: nothing to compare")
    diff = _guard(lambda: diff_versions(db, name, from_v, to_v, viewer))
    if as_json:
        payload = {
            "name": name,
            "from": from_v,
            "to": to_v,
            "added": [row_json(r) for r in diff.added],
            "removed": [row_json(r) for r in diff.removed],
            "changed": [
                {"before": row_json(c.before), "after": row_json(c.after)} for c in diff.changed
            ],
        }
        typer.echo(json.dumps(payload))
        return
    out.print(
        f"{name} {from_v} -> {to_v}: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed",
        markup=False,
        highlight=False,
    )
    for row in diff.added:
        out.print(f"+ {row.prefix} {row.destination} {_decimal(row.rate)}", markup=False)
    for row in diff.removed:
        out.print(f"- {row.prefix} {row.destination} {_decimal(row.rate)}", markup=False)
    for change in diff.changed:
        b, a = change.before, change.after
        out.print(
            f"~ {a.prefix} {a.destination} rate {_decimal(b.rate)} -> {_decimal(a.rate)}"
            f", connect {_decimal(b.connect_fee)} -> {_decimal(a.connect_fee)}"
            f", increment {b.increment} -> {a.increment}",
            markup=False,
        )


__all__ = ["register", "row_json"]
