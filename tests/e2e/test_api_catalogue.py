"""The provider's catalogue over HTTP: plans, packages and number inventory, as a provider
admin writes them and a customer finds and buys from them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

INVENTORY = (
    "number,country,type,region,locality,area_code,monthly_price,setup_price\n"
    "+16175550300,US,local,MA,Boston,617,1.50,0.25\n"
    "+13125550300,US,local,IL,Chicago,312,1.20,0\n"
)


def get(world: Any, who: str, path: str) -> Any:
    return world.client.get(path, headers=world.headers(who, idempotency_key=None))


def post(world: Any, who: str, path: str, body: dict[str, Any], key: str = "auto") -> Any:
    return world.client.post(path, json=body, headers=world.headers(who, idempotency_key=key))


def test_plan_created_by_the_provider_is_offered_to_its_customers_and_sold(world: Any) -> None:
    alpha = world.ids["alpha"]
    body = {"code": "gold", "name": "Gold", "monthly_fee": "20.00", "free_credit_percent": "25"}
    created = post(world, "acme", "/v1/plans", body, key="plan-gold")
    assert created.status_code == 201, created.text
    assert Decimal(created.json()["monthly_fee"]) == 20
    again = post(world, "acme", "/v1/plans", body, key="plan-gold")
    assert (again.status_code, again.json()["id"]) == (201, created.json()["id"])
    reused = post(world, "acme", "/v1/plans", {**body, "monthly_fee": "30"}, key="plan-gold")
    assert reused.status_code == 409
    duplicate = post(world, "acme", "/v1/plans", body)
    assert duplicate.status_code == 409
    assert [p["code"] for p in get(world, "acme", "/v1/plans").json()["plans"]] == ["gold", "team"]
    offered = get(world, "alice", f"/v1/accounts/{world.ids['alice']}/plans").json()["plans"]
    assert {p["code"] for p in offered} == {"gold", "team"}
    assert get(world, "zeta", "/v1/plans").json()["plans"] == []  # a competitor's catalogue
    sub = post(world, "alpha", f"/v1/accounts/{alpha}/subscription", {"plan": "gold", "seats": 2})
    assert sub.status_code == 201, sub.text
    assert Decimal(sub.json()["monthly_total"]) == Decimal("40")


def test_package_created_by_the_provider_is_bought_from_the_balance(world: Any) -> None:
    alpha = world.ids["alpha"]
    body = {"code": "min60", "unit": "s:call", "amount": "3600", "price": "3.00"}
    created = post(world, "acme", "/v1/packages", body)
    assert created.status_code == 201, created.text
    offers = get(world, "alpha", f"/v1/accounts/{alpha}/package-offers").json()["packages"]
    assert [(p["code"], Decimal(p["price"])) for p in offers] == [
        ("min60", Decimal(3)),
        ("sms100", Decimal(2)),
    ]
    before = get(world, "alpha", f"/v1/accounts/{alpha}/balances").json()
    bought = post(world, "alpha", f"/v1/accounts/{alpha}/packages", {"package": "min60"})
    assert bought.status_code == 201, bought.text
    counters = get(world, "alpha", f"/v1/accounts/{alpha}/packages").json()["counters"]
    assert Decimal(counters["call"]) == 3600
    after = get(world, "alpha", f"/v1/accounts/{alpha}/balances").json()
    assert _paid(before) - _paid(after) == Decimal(3)
    bad = post(world, "acme", "/v1/packages", {**body, "code": "x", "unit": "USD"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )


def _paid(balances: dict[str, Any]) -> Decimal:
    (usd,) = [u for u in balances["units"] if u["unit"] == "USD"]
    return Decimal(usd["available"])


def test_inventory_import_reports_bad_lines_and_imports_nothing_then_numbers_are_found(
    world: Any,
) -> None:
    alpha = world.ids["alpha"]
    before = world.snapshot()
    refused = post(
        world, "acme", "/v1/inventory/numbers", {"csv": INVENTORY + "+1617,US,local,,,,x,0\n"}
    )
    assert refused.status_code == 422
    assert "line 4" in refused.json()["detail"]
    assert world.snapshot() == before
    imported = post(world, "acme", "/v1/inventory/numbers", {"csv": INVENTORY}, key="inv-1")
    assert imported.status_code == 200, imported.text
    assert (imported.json()["added"], imported.json()["taken"]) == (2, [])
    replay = post(world, "acme", "/v1/inventory/numbers", {"csv": INVENTORY}, key="inv-1")
    assert replay.json() == imported.json()
    found = get(
        world,
        "alpha",
        f"/v1/accounts/{alpha}/numbers/available?country=US&locality=chicago&area_code=312",
    ).json()["numbers"]
    assert [(n["number"], Decimal(n["monthly_price"])) for n in found] == [
        ("+13125550300", Decimal("1.20"))
    ]
    bought = post(world, "alpha", f"/v1/accounts/{alpha}/numbers", {"number": "+13125550300"})
    assert bought.status_code == 201, bought.text
    again = post(world, "acme", "/v1/inventory/numbers", {"csv": INVENTORY})
    assert again.json()["taken"] == ["+13125550300"]
    assert again.json()["updated"] == 1
    org_admin = post(world, "alpha", "/v1/inventory/numbers", {"csv": INVENTORY})
    assert org_admin.status_code == 403
