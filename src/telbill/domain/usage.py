"""Usage events: what a switch or CPaaS reports (a CDR), before and after parsing.

Format readers (`adapters/formats/cdr_*.py`) turn file rows into `UsageEvent`s or
`RowError`s; rating turns a `UsageEvent` into charges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from telbill.domain.tariffs import Direction, Service


@dataclass(frozen=True, slots=True)
class CallSegment:
    """A part of a call with its own billability (e.g. a voice-bot call transferred to an
    agent over the customer's own SIP trunk: that segment is not billable)."""

    start: datetime
    end: datetime
    billable: bool = True


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One usage record. Times are timezone-aware UTC.

    Voice: billed from `answer` to `end`; `answer=None` means unanswered (costs nothing).
    When only a duration is known, `duration_s` carries the billable seconds from answer.
    SMS: `text` (segments computed) or `segments` given directly.
    """

    id: str
    account: str
    to_number: str
    start: datetime
    service: Service = Service.VOICE
    direction: Direction = Direction.OUTBOUND
    user: str | None = None
    from_number: str | None = None
    answer: datetime | None = None
    end: datetime | None = None
    duration_s: int | None = None
    text: str | None = None
    segments: int | None = None
    speech_s: int = 0
    call_segments: tuple[CallSegment, ...] = ()
    line: int | None = None
    raw: dict[str, str] = field(default_factory=dict)
    # Optional call class ("incoming", "public_network", "local_extension", "extended_local")
    # when the switch knows it; otherwise rating derives it (see domain/rating.classify_call).
    call_class: str | None = None
    # The campaign (auto-dialer / voice-bot run, by id or name) that made the usage, if any.
    campaign: str | None = None
    # Data: bytes used; generic: units used (services DATA and GENERIC).
    units: int | None = None
