"""Email notifications over SMTP: RFC 5322 messages with a plain-text body from Jinja2.

Settings come from the environment: TELBILL_SMTP_HOST (default localhost), TELBILL_SMTP_PORT
(25), TELBILL_SMTP_FROM (billing@localhost), optional TELBILL_SMTP_USER / TELBILL_SMTP_PASSWORD
and TELBILL_SMTP_STARTTLS=1.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined

from telbill.adapters.notify.webhooks import DeliveryFailed
from telbill.domain.money import format_amount, round_money

SUBJECTS = {
    "balance.low": "Low balance on {{ p.account_name or 'your account' }}: "
    "{{ p.balance | money }} {{ p.currency }}",
    "balance.zero": "Your balance has run out ({{ p.balance | money }} {{ p.currency }})",
    "account.suspended": "Your account has been suspended",
    "account.resumed": "Your account is active again",
    "topup.receipt": "Receipt for your top-up",
    "topup.requested": "Top-up request to confirm: {{ p.amount | money }} {{ p.currency }} "
    "from account {{ p.account_id }}",
    "topup.rejected": "Your top-up request of {{ p.amount | money }} {{ p.currency }} "
    "was not confirmed",
    "invoice.issued": "Invoice {{ p.label }} for {{ p.period }}: "
    "{{ p.total | money }} {{ p.currency }}",
    "invoice.overdue": "Invoice {{ p.label }} is overdue: "
    "{{ p.amount_due | money }} {{ p.currency }}",
    "credit_note.issued": "Credit note {{ p.label }} for invoice {{ p.invoice_label }}",
}
DEFAULT_SUBJECT = "telbill notification: {{ event.type }}"

BODIES = {
    "invoice.issued": """Hello,

Invoice {{ p.label }} for {{ p.period }} totals {{ p.total | money }} {{ p.currency }} (VAT \
included: {{ p.vat | money }}).
{% if p.billing_mode == 'postpaid' %}Amount owed: {{ p.amount_owed | money }} {{ p.currency }}, \
due by {{ p.due_at[:10] }}.
{% else %}It was paid from your prepaid balance; nothing is owed.
{% endif %}""",
    "balance.low": """Hello,

{% set cur = p.currency %}The balance of {{ p.account_name or 'your account' }} is \
{{ p.balance | money }} {{ cur }}.
{% if p.level is defined %}It has reached your warning threshold of {{ p.level | money }} {{ cur }}.
{% else %}At your average daily spend of {{ p.average_daily_spend | money }} {{ cur }} it will \
last less than {{ p.days }} days.
{% endif %}
Top up to keep your calls and messages flowing.
""",
    "balance.zero": """Hello,

The balance of {{ p.account_name or 'your account' }} has reached \
{{ p.balance | money }} {{ p.currency }}.
New calls and messages may be refused until you top up.
""",
}
DEFAULT_BODY = """Hello,

Event {{ event.type }} occurred at {{ event.occurred_at }}.
{% for name, value in p | dictsort %}{{ name }}: {{ value }}
{% endfor %}"""
FOOTER = "\n--\nEvent {{ event.id }} · sent by telbill\n"

_env = Environment(
    loader=DictLoader(
        {f"subject/{k}": v for k, v in SUBJECTS.items()}
        | {f"body/{k}": v + FOOTER for k, v in BODIES.items()}
        | {"subject/default": DEFAULT_SUBJECT, "body/default": DEFAULT_BODY + FOOTER}
    ),
    undefined=StrictUndefined,
    autoescape=False,  # plain-text mail, not HTML
    keep_trailing_newline=True,
)


def _money(value: object) -> str:
    """Amounts in messages: two decimals, half-up (the payload keeps the exact value)."""
    return format_amount(round_money(Decimal(str(value)), 2), 2)


_env.filters["money"] = _money


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    sender: str = "billing@localhost"
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log or traceback
    starttls: bool = False
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings:
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("TELBILL_SMTP_HOST", "localhost"),
            port=int(env.get("TELBILL_SMTP_PORT", "25")),
            sender=env.get("TELBILL_SMTP_FROM", "billing@localhost"),
            user=env.get("TELBILL_SMTP_USER") or None,
            password=env.get("TELBILL_SMTP_PASSWORD") or None,
            starttls=env.get("TELBILL_SMTP_STARTTLS", "") in {"1", "true", "yes"},
        )


def _template(kind: str, event_type: str) -> Any:
    name = f"{kind}/{event_type}"
    return _env.get_template(name if name in _env.list_templates() else f"{kind}/default")


# Files attached to a message: (file name, PDF bytes), given by the service layer per event.
Attachments = Callable[[str, Mapping[str, Any]], Sequence[tuple[str, bytes]]]


def render_message(
    settings: SmtpSettings,
    to: str,
    event: Mapping[str, Any],
    attachments: Sequence[tuple[str, bytes]] = (),
) -> EmailMessage:
    """An RFC 5322 message for `event` (a dict with id, type, payload, occurred_at), with
    `attachments` as PDF parts."""
    context = {"event": event, "p": event.get("payload") or {}}
    subject = _template("subject", str(event["type"])).render(context).strip()
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"event-{event['id']}", domain="telbill")
    message["Telbill-Event-Id"] = str(event["id"])
    message.set_content(_template("body", str(event["type"])).render(context))
    for filename, data in attachments:
        message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return message


class SmtpEmailSender:
    """Sends one message per call over a fresh SMTP connection; DeliveryFailed on errors.

    `attachments(to, event)` names the documents (invoice, receipt PDFs) a message carries.
    """

    def __init__(
        self, settings: SmtpSettings | None = None, attachments: Attachments | None = None
    ) -> None:
        self.settings = settings or SmtpSettings.from_env()
        self.attachments = attachments

    def send(self, to: str, event: Mapping[str, Any]) -> None:
        files = self.attachments(to, event) if self.attachments is not None else ()
        message = render_message(self.settings, to, event, files)
        try:
            with smtplib.SMTP(
                self.settings.host, self.settings.port, timeout=self.settings.timeout_s
            ) as smtp:
                if self.settings.starttls:
                    smtp.starttls()
                if self.settings.user:
                    smtp.login(self.settings.user, self.settings.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc


__all__ = ["SmtpEmailSender", "SmtpSettings", "render_message"]
