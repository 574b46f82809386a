"""Issue 17, rule 11 on the dashboard: a provider admin approves or rejects the numbers of
its inventory that wait for a verification (the inventory page lists them)."""

from __future__ import annotations

from web_world import log_in

from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.services import numbers

INVENTORY = (
    "number,country,type,monthly_price,setup_price,verification_required\n"
    "+442071234567,GB,local,3.00,1.00,yes\n"
    "+442071234568,GB,local,3.00,1.00,yes\n"
)


def decide(client, acme: int, csrf: str | None, number: str, decision: str):
    data = {"number": number, "decision": decision}
    if csrf is not None:
        data["csrf_token"] = csrf
    url = f"/provider/{acme}/numbers/verify"
    return client.post(url, data=data, follow_redirects=False)


def test_provider_admin_approves_and_rejects_pending_numbers_on_the_inventory_page(
    web_world, client
):
    acme, alpha, bravo = web_world.ids["acme"], web_world.ids["alpha"], web_world.ids["bravo"]
    rows, _ = read_inventory_text(INVENTORY)
    numbers.import_inventory(web_world.db, acme, rows, clock=web_world.clock)
    # Two customers: an approval holds for the buyer's country, a rejection for its number.
    for buyer, number in ((bravo, "+442071234567"), (alpha, "+442071234568")):
        numbers.buy_number(web_world.db, buyer, number, idempotency_key=f"web-v{number}",
                           clock=web_world.clock)  # fmt: skip
    csrf = log_in(client, web_world.keys["alpha"])
    assert decide(client, acme, csrf, "+442071234567", "approve").status_code in (403, 404)
    csrf = log_in(client, web_world.keys["acme"])
    page = client.get(f"/provider/{acme}/inventory").text
    assert 'id="pending"' in page and "+442071234567" in page and "+442071234568" in page
    assert decide(client, acme, None, "+442071234567", "approve").status_code == 403
    assert decide(client, acme, csrf, "+442071234567", "approve").status_code == 303
    assert decide(client, acme, csrf, "+442071234568", "reject").status_code == 303
    assert [r.status for r in numbers.list_numbers(web_world.db, bravo)] == ["active"]
    assert numbers.list_numbers(web_world.db, alpha) == []  # released: back to the inventory
    assert "No number is waiting." in client.get(f"/provider/{acme}/inventory").text
