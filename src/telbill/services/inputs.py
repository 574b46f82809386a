"""Validation of the inputs of the ledger services (amounts, currency, service, direction)."""

from __future__ import annotations

from collections.abc import Sequence

from telbill.domain.money import (
    from_minor,
    is_money_unit,
    parse_amount,
    to_minor,
    validate_currency,
)
from telbill.domain.tariffs import Direction, Service
from telbill.errors import InsufficientBalance, InvalidInput
from telbill.ledger import Bucket, BucketKind
from telbill.services.accounts import Account


def minor_amount(value: object, unit: str, *, field: str = "amount", signed: bool = False) -> int:
    """A user amount of `unit` as stored integer minor units; positive unless `signed`."""
    amount = parse_amount(value, field=field)
    minor = to_minor(amount, unit)
    if minor == 0 or (minor < 0 and not signed):
        raise InvalidInput(f"{field} must be {'non-zero' if signed else 'positive'}, got {value}")
    return minor


def check_currency(account: Account, currency: str | None) -> None:
    if currency is not None and validate_currency(currency) != account.currency:
        raise InvalidInput(
            f"wrong currency {currency}: account {account.id} is billed in {account.currency}",
            expected=account.currency,
        )


def service_name(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return Service(value).value
    except ValueError:
        raise InvalidInput(f"unknown service {value!r}") from None


def direction_name(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return Direction(value).value
    except ValueError:
        raise InvalidInput(f"direction must be inbound or outbound, got {value!r}") from None


def paid_bucket(buckets: Sequence[Bucket], unit: str) -> Bucket:
    for bucket in buckets:
        if bucket.kind is BucketKind.PAID and bucket.unit == unit:
            return bucket
    raise InvalidInput(f"the wallet has no paid balance in {unit}")


def refuse_insufficient(error: InsufficientBalance, *, account_id: int) -> InsufficientBalance:
    """The ledger's refusal restated for a person: amounts in units, the account named."""
    unit = str(error.details.get("unit", ""))
    needed = from_minor(int(error.details.get("needed", 0)), unit)
    available = from_minor(int(error.details.get("available", 0)), unit)
    shown = unit if is_money_unit(unit) else unit.split(":", 1)[0] + " units of " + unit
    return InsufficientBalance(
        f"insufficient balance on account {account_id}: {format(needed, 'f')} {shown} "
        f"needed, {format(available, 'f')} available",
        account_id=account_id,
        unit=unit,
        needed=str(needed),
        available=str(available),
    )
