"""CLI of SMS tools: `telbill sms segments TEXT` (pure domain: no database is opened).

Kept apart from the rating commands so it imports only the SMS domain (a fast command).
"""

from __future__ import annotations

import json

import typer

from telbill.domain.sms import segment_sms

sms_app = typer.Typer(help="SMS tools.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(sms_app, name="sms")


@sms_app.command("segments")
def sms_segments_command(
    text: str = typer.Argument(..., help="The message text."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Encoding (GSM-7 or UCS-2), segment count and characters per segment of a text."""
    result = segment_sms(text)
    data = {
        "encoding": result.encoding,
        "segments": result.segments,
        "chars_per_segment": result.chars_per_segment,
        "units": result.units,
        "characters": result.characters,
        "parts": list(result.parts),
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{result.encoding}: {result.segments} segment(s), "
        f"{result.chars_per_segment} per segment, {result.units} units"
    )
    from rich.table import Table

    table = Table("segment", "units", "text")
    for number, part in enumerate(result.parts, start=1):
        table.add_row(str(number), str(segment_sms(part).units), repr(part))
    from rich.console import Console

    Console().print(table)
