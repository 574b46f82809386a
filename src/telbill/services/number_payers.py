"""Who pays for a call the number's owner pays for (an inbound call to a toll-free number).

Rating says *that* the owner of the called number pays (`Payer.NUMBER_OWNER`); this module
says *who* that is, for CDR posting (`services.charging`) and real-time sessions
(`services.sessions`):

* The owner is the account that rents the called number, looked up by its E.164 form in
  `number_rentals` (`services.numbers`): a rental that is ``active``, or ``suspended`` for an
  unpaid renewal and still in its grace period (the number is still the renter's). The
  money comes from the wallet that pays for that account (`billing_account`).
* A called number that is not in our inventory, or not rented now, has no owner here: the
  event's own account pays (its billing account), as for any inbound call.
* A caller limited to a subtree (an API key's scope) never charges a wallet outside it: a
  number rented outside that subtree counts as not in our inventory, so the caller's own
  account pays and nothing about the other tenant is revealed.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, bindparam, select

from telbill.adapters.db.lifecycle_tables import number_rentals
from telbill.adapters.db.tables import accounts
from telbill.domain.lookup import TariffIndex
from telbill.domain.numbers import normalize_number
from telbill.domain.rating import Payer, rate_event
from telbill.domain.tariffs import Direction
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput
from telbill.services.accounts import Account, billing_account

# Rentals whose number still belongs to the renter (see `services.numbers`).
OWNING_STATUSES = ("active", "suspended")

_RENTER = (
    select(number_rentals.c.account_id)
    .where(
        number_rentals.c.number == bindparam("number"),
        number_rentals.c.status.in_(OWNING_STATUSES),
    )
    .order_by(number_rentals.c.id.desc())
    .limit(1)
)
_PARENT = select(accounts.c.parent_id).where(accounts.c.id == bindparam("account_id"))


def number_owner_pays(event: UsageEvent, index: TariffIndex) -> bool:
    """Whether rating makes the called number's owner pay for `event` (an inbound call to a
    toll-free number): rating's own rule, read from a zero-second probe of the call."""
    if event.direction is not Direction.INBOUND:
        return False
    probe = replace(event, answer=None, end=None, duration_s=0, call_segments=(), speech_s=0)
    rated = rate_event(probe, index, None, labels=False)
    return any(charge.payer is Payer.NUMBER_OWNER for charge in rated.charges)


def renter_of(conn: Connection, number: str) -> int | None:
    """The account renting `number` now (active or suspended in grace), or None when the
    number is not ours or not rented."""
    try:
        e164 = normalize_number(number)
    except InvalidInput:
        return None
    found = conn.execute(_RENTER, {"number": e164}).scalar()
    return None if found is None else int(found)


def _is_under(conn: Connection, account_id: int, ancestor: int) -> bool:
    current: int | None = account_id
    for _ in range(64):  # the tree is shallow; guard against a cycle
        if current is None:
            return False
        if current == ancestor:
            return True
        current = conn.execute(_PARENT, {"account_id": current}).scalar()
    return False


def number_owner_payer(
    conn: Connection, number: str, *, within: int | None = None
) -> Account | None:
    """The wallet that pays for calls the owner of `number` pays for, or None when the event's
    own account pays (module rules). `within`: the caller's subtree, when it has one."""
    renter = renter_of(conn, number)
    if renter is None:
        return None
    if within is not None and not _is_under(conn, renter, within):
        return None
    return billing_account(conn, renter)


__all__ = ["OWNING_STATUSES", "number_owner_pays", "number_owner_payer", "renter_of"]
