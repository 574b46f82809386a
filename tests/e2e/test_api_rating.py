"""Rating endpoints over HTTP (SQLite and PostgreSQL): quote by GET and POST, SMS segments,
no rate -> a no_rate problem, no key -> 401. Nothing is written by a quote."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import metadata
from telbill.adapters.formats.tariff_csv import read_tariff_csv
from telbill.api.app import API_PREFIX, create_app
from telbill.api.routes_rating import router
from telbill.domain.tariffs import Increment, RateRow, RowError, Service, TariffSettings
from telbill.services import accounts
from telbill.services.auth import Role, create_api_key
from telbill.services.clock import ManualClock
from telbill.services.tariffs import import_tariff

RETAIL = """prefix,destination,service,direction,rate,increment
44,United Kingdom,voice,outbound,0.013,60/60
4420,London,voice,outbound,0.06,1/1
44,United Kingdom,sms,outbound,0.04,
"""
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Api:
    def __init__(self, client: TestClient, key: str, db: Database) -> None:
        self.client, self.key, self.db = client, key, db

    def headers(self, idempotency_key: str | None = "q-1") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def row_counts(self) -> dict[str, int]:
        with self.db.engine.connect() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables
            }


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    migrate(db_url)
    db = Database(db_url)
    clock = ManualClock(NOW)
    parsed = read_tariff_csv(io.StringIO(RETAIL, newline=""))
    rows = (item if isinstance(item, RowError) else item.row for item in parsed)
    import_tariff(db, "retail", rows, TariffSettings(currency="GBP"), now=NOW)
    org = accounts.create_account(
        db, kind="provider", name="acme", currency="GBP", idempotency_key="a-1", clock=clock
    )
    key = create_api_key(db, account_id=org.id, role=Role.PROVIDER_ADMIN, name="k", clock=clock)
    assert key.secret is not None
    app = create_app(db_url, clock=clock)
    app.include_router(router, prefix=API_PREFIX)
    with TestClient(app) as client:
        yield Api(client, key.secret, db)
    app.state.db.dispose()
    db.dispose()


def test_get_quote_prices_83_seconds_per_second(api: Api) -> None:
    response = api.client.get(
        "/v1/quote",
        params={"tariff": "retail", "to": "+44 20 7123 4567", "duration": 83},
        headers=api.headers(None),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cost"] == "0.083000" and body["currency"] == "GBP"  # 83 s at 0.06/min on 1/1
    assert (body["prefix"], body["billed_seconds"], body["increment"]) == ("4420", 83, "1/1")


def test_post_quote_of_an_sms_counts_segments_and_changes_nothing(api: Api) -> None:
    before = api.row_counts()
    response = api.client.post(
        "/v1/quote",
        json={"tariff": "retail", "to": "+447911123456", "service": "sms", "text": "€" * 81},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["segments"], body["encoding"], body["cost"]) == (2, "GSM-7", "0.080000")
    assert api.row_counts() == before


def test_quote_without_a_rate_is_a_no_rate_problem(api: Api) -> None:
    response = api.client.get(
        "/v1/quote", params={"tariff": "retail", "to": "+33142000000"}, headers=api.headers(None)
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/no_rate")


def test_quote_of_an_unknown_tariff_is_404(api: Api) -> None:
    response = api.client.get(
        "/v1/quote", params={"tariff": "ghost", "to": "+442071234567"}, headers=api.headers(None)
    )
    assert response.status_code == 404


def test_float_duration_and_unknown_fields_are_refused(api: Api) -> None:
    response = api.client.post(
        "/v1/quote",
        json={"tariff": "retail", "to": "+442071234567", "duration": -1, "colour": "red"},
        headers=api.headers(),
    )
    assert response.status_code == 422


def test_sms_segments_endpoint_reports_ucs2(api: Api) -> None:
    response = api.client.post(
        "/v1/sms/segments", json={"text": "Привет"}, headers=api.headers()
    )
    assert response.status_code == 200
    assert response.json()["encoding"] == "UCS-2"


def test_rating_endpoints_need_a_key(api: Api) -> None:
    assert api.client.get("/v1/quote", params={"tariff": "retail", "to": "44"}).status_code == 401
    response = api.client.post(
        "/v1/sms/segments", json={"text": "x"}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 401


def test_quote_of_data_bytes_is_priced_per_rate_unit(api: Api) -> None:
    row = RateRow(
        "", "Data", Decimal("0.1"), service=Service.DATA, increment=Increment(10240, 10240),
        rate_unit=1_048_576,
    )  # fmt: skip
    import_tariff(api.db, "data", [row], TariffSettings(currency="GBP"), now=NOW)
    response = api.client.get(
        "/v1/quote",
        params={"tariff": "data", "to": "+447911123456", "service": "data", "units": 1_000_000},
        headers=api.headers(None),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # 98 x 10240 bytes x 0.1 / 1048576 = 0.095703125, rounded half up at 6 decimals
    assert (body["cost"], body["billed_units"], body["unit"]) == ("0.095703", 1_003_520, "B:data")
