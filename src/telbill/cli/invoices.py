"""CLI of invoices and credit notes.

``telbill invoice run ACCOUNT --month 2026-03`` issues (or shows, unchanged) a month's
invoice; ``telbill invoice run --all`` runs the month-end job (last month, every account,
once); ``invoice preview ACCOUNT`` shows this month so far;
``invoice list ACCOUNT``, ``invoice show ID``, ``invoice pdf ID --out FILE``;
``invoice pay ID AMOUNT --method bank_transfer|direct_debit`` records a payment of a
postpaid invoice; ``invoice credit-note ID --line "text=amount" --reason ...`` issues a
credit note; ``invoice settings ACCOUNT [--terms-days N] [--email ADDRESS | --no-email]``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    fail,
    handle_errors,
    open_db,
    print_json,
)
from telbill.domain.money import format_amount, from_micros
from telbill.services import invoice_documents, invoice_payments, invoice_runs
from telbill.services import invoices as invoice_service
from telbill.services.clock import SystemClock

invoice_app = typer.Typer(help="Monthly invoices, payments and credit notes.", no_args_is_help=True)

InvoiceArg = Annotated[int, typer.Argument(help="Invoice id.")]
IdempotencyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Reuse a key to retry safely: the same key changes nothing the second time.",
        show_default=False,
    ),
]


def _key(given: str | None) -> str:
    return given or f"cli:{uuid.uuid4()}"


def _print_invoice(invoice: invoice_service.Invoice) -> None:
    table = Table(
        title=f"{invoice.label} · {invoice.customer_name} · {invoice.period} "
        f"({invoice.timezone}) · {invoice.currency}"
    )
    for name in ("section", "description", "direction", "qty", "min / units", "amount"):
        table.add_column(name, justify="right" if name in ("qty", "amount") else "left")
    for line in invoice.lines:
        measure = line.minutes or ("" if line.billed_units is None else str(line.billed_units))
        table.add_row(
            line.section, line.description, line.direction or "", str(line.quantity),
            measure, format_amount(line.amount),
        )  # fmt: skip
    console.print(table)
    rate = f"{(invoice.vat_rate * 100).normalize():f}%"
    console.print(
        f"total {format_amount(invoice.total)} {invoice.currency} (VAT {rate} included: "
        f"{format_amount(invoice.vat)}, net {format_amount(invoice.net)})"
    )
    due = f", due {invoice.due_at:%Y-%m-%d}" if invoice.due_at else ""
    console.print(
        f"{invoice.billing_mode}: status {invoice.status}, amount due "
        f"{format_amount(invoice.amount_due)} {invoice.currency}{due}"
    )


@invoice_app.command("run")
@handle_errors
def run_command(
    account_id: Annotated[int | None, typer.Argument(help="Billing account id.")] = None,
    month: Annotated[str | None, typer.Option(help="YYYY-MM in the account's timezone.")] = None,
    run_all: Annotated[
        bool, typer.Option("--all", help="Month-end job: last month for every account, once.")
    ] = False,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Issue a month's invoice (the same invoice again if already issued)."""
    db = open_db(database)
    clock = SystemClock()
    if run_all:
        issued = invoice_runs.issue_month_end(db, clock.now())
        overdue = invoice_runs.flag_overdue(db, clock.now())
        if json_output:
            print_json({"issued": issued, "overdue_flagged": overdue})
        else:
            console.print(f"issued {issued} invoices; {overdue} newly overdue")
        return
    if account_id is None or month is None:
        raise fail("give ACCOUNT and --month YYYY-MM, or --all")
    invoice = invoice_service.issue_invoice(db, account_id, month, clock=clock)
    if json_output:
        print_json(invoice)
        return
    _print_invoice(invoice)


@invoice_app.command("preview")
@handle_errors
def preview_command(
    account_id: Annotated[int, typer.Argument(help="Billing account id.")],
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """What this month's invoice says so far (nothing is issued)."""
    draft = invoice_service.preview_month_to_date(
        open_db(database), account_id, clock=SystemClock()
    )
    if json_output:
        print_json(
            {
                "lines": [
                    {
                        "section": line.section,
                        "description": line.description,
                        "direction": line.direction,
                        "quantity": line.quantity,
                        "billed_units": line.billed_units,
                        "amount": format_amount(from_micros(line.amount_micros)),
                    }
                    for line in draft.lines
                ],
                "total": format_amount(from_micros(draft.total_micros)),
            }
        )
        return
    table = Table(title=f"account {account_id}: this month so far (VAT included)")
    for name in ("section", "description", "direction", "qty", "amount"):
        table.add_column(name, justify="right" if name in ("qty", "amount") else "left")
    for line in draft.lines:
        table.add_row(
            line.section, line.description, line.direction or "", str(line.quantity),
            format_amount(from_micros(line.amount_micros)),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"total so far {format_amount(from_micros(draft.total_micros))}; the invoice is issued "
        "after the month ends (`telbill tick` or `telbill invoice run --all`)"
    )


@invoice_app.command("list")
@handle_errors
def list_command(
    account_id: Annotated[int, typer.Argument(help="Billing account id.")],
    status: Annotated[
        str | None, typer.Option(help="issued, partially_paid, paid or overdue.")
    ] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """An account's invoices, newest first."""
    found = invoice_service.list_invoices(
        open_db(database), account_id, clock=SystemClock(), status=status
    )
    if json_output:
        print_json(found)
        return
    table = Table(title=f"invoices of account {account_id}")
    for name in ("id", "number", "period", "total", "due", "status"):
        table.add_column(name)
    for invoice in found:
        table.add_row(
            str(invoice.id), invoice.label, invoice.period,
            f"{format_amount(invoice.total)} {invoice.currency}",
            format_amount(invoice.amount_due), invoice.status,
        )  # fmt: skip
    console.print(table)


@invoice_app.command("show")
@handle_errors
def show_command(
    invoice_id: InvoiceArg, json_output: JsonOption = False, database: DatabaseOption = None
) -> None:
    """One invoice with its lines, totals and state."""
    invoice = invoice_service.get_invoice(open_db(database), invoice_id, clock=SystemClock())
    if json_output:
        print_json(invoice)
        return
    _print_invoice(invoice)


@invoice_app.command("pdf")
@handle_errors
def pdf_command(
    invoice_id: InvoiceArg,
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    credit_note: Annotated[
        bool, typer.Option("--credit-note", help="The id is a credit note's.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Write an invoice (or a credit note) as PDF."""
    db = open_db(database)
    if credit_note:
        data = invoice_documents.credit_note_pdf(db, invoice_id)
    else:
        data = invoice_documents.invoice_pdf(db, invoice_id, clock=SystemClock())
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data)} bytes)")


@invoice_app.command("pay")
@handle_errors
def pay_command(
    invoice_id: InvoiceArg,
    amount: Annotated[str, typer.Argument(help="Decimal amount received, e.g. 60.00.")],
    method: Annotated[str, typer.Option(help="bank_transfer or direct_debit.")] = "bank_transfer",
    reference: Annotated[str | None, typer.Option(help="Bank reference.")] = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Record a payment received for a postpaid invoice (credits the wallet)."""
    db = open_db(database)
    clock = SystemClock()
    payment = invoice_payments.record_payment(
        db, invoice_id, amount, method=method, reference=reference,
        idempotency_key=_key(idempotency_key), clock=clock,
    )  # fmt: skip
    if json_output:
        print_json(payment)
        return
    invoice = invoice_service.get_invoice(db, invoice_id, clock=clock)
    console.print(
        f"payment {payment.id}: {format_amount(payment.amount)} {invoice.currency} by "
        f"{payment.method}; {invoice.label} is {invoice.status}, "
        f"{format_amount(invoice.amount_due)} due"
    )


@invoice_app.command("credit-note")
@handle_errors
def credit_note_command(
    invoice_id: InvoiceArg,
    line: Annotated[
        list[str], typer.Option("--line", help='"description=amount" (gross; repeat).')
    ],
    reason: Annotated[str, typer.Option(help="Why the invoice is corrected.")],
    no_wallet_credit: Annotated[
        bool,
        typer.Option("--no-wallet-credit", help="Money returned outside telbill (prepaid)."),
    ] = False,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Issue a credit note against an invoice (credits the wallet by default)."""
    lines = []
    for text in line:
        description, sep, amount = text.rpartition("=")
        if not sep or not description.strip():
            raise fail(f'--line must be "description=amount", got {text!r}')
        lines.append((description.strip(), amount.strip()))
    note = invoice_payments.issue_credit_note(
        open_db(database), invoice_id, lines, reason=reason,
        credit_wallet=not no_wallet_credit, idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )  # fmt: skip
    if json_output:
        print_json(note)
        return
    console.print(
        f"credit note {note.label} (id {note.id}) for INV-{note.invoice_number}: "
        f"{format_amount(note.total)} {note.currency}"
        + (" credited to the wallet" if note.transaction_id else "")
    )


@invoice_app.command("settings")
@handle_errors
def settings_command(
    account_id: Annotated[int, typer.Argument(help="Billing account id.")],
    terms_days: Annotated[
        int | None, typer.Option(help="Payment terms of postpaid invoices (days).")
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="Email invoices and receipts (PDF) to this address.")
    ] = None,
    no_email: Annotated[bool, typer.Option("--no-email", help="Stop emailing them.")] = False,
    empty_month: Annotated[
        str | None,
        typer.Option(
            help="A month without charges gives 'invoice' (a zero invoice) or 'statement'; "
            "set on a provider, it holds for its accounts that do not choose."
        ),
    ] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Show or change an account's payment terms, document emails and empty-month bill."""
    db = open_db(database)
    if terms_days is None and email is None and not no_email and empty_month is None:
        settings = invoice_documents.get_invoice_settings(db, account_id)
    else:
        settings = invoice_documents.set_invoice_settings(
            db, account_id, clock=SystemClock(), payment_terms_days=terms_days,
            email_documents=False if no_email else (True if email else None),
            document_email=email, empty_month=empty_month,
        )  # fmt: skip
    if json_output:
        print_json(settings)
        return
    where = settings.document_email if settings.email_documents else "not emailed"
    console.print(
        f"account {account_id}: payment terms {settings.payment_terms_days} days; "
        f"documents: {where}; a month without charges: "
        f"{settings.empty_month or 'as the provider chooses'}"
    )


def seed_invoice_preview(ctx: Any) -> None:
    """Demo step: what this month's invoices say so far (the scheduler issues them on the 1st)."""
    for name in ("Acme Contact Centre", "Globex Voicebots"):
        draft = invoice_service.preview_month_to_date(ctx.db, ctx.accounts[name], clock=ctx.clock)
        ctx.report(
            "invoices",
            f"{name}: this month so far {len(draft.lines)} lines, total "
            f"{format_amount(from_micros(draft.total_micros))} USD (VAT included); issued on "
            "the 1st by `telbill tick` / `telbill invoice run --all`",
        )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(invoice_app, name="invoice")
