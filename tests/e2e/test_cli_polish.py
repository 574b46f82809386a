"""The CLI items of issue 17, each as an operator meets it: `plan create` with a tariff that
does not exist, `plan list`, `cdr post --help` naming the CDR columns, and `tariff import`'s
progress bar counting rows as they are stored. (`campaign` commands:
test_rule_campaign_on_package_minutes.py.)"""

from __future__ import annotations

from typing import Any

from rich.progress import Progress
from rules_support import RETAIL_DECK, help_text, provider_and_org, run, run_json

from telbill.adapters.formats.cdr_native import NATIVE_COLUMNS
from telbill.services import tariffs


def test_plan_with_a_tariff_that_does_not_exist_is_refused_and_not_stored(db_url):
    provider_and_org(db_url)
    refused = run(db_url, "plan", "create", "cheap", "--tariff", "nope", ok=False)
    assert refused.exit_code == 1 and "no tariff named 'nope'" in refused.stderr
    assert run_json(db_url, "plan", "list") == []


def test_plan_list_shows_every_plan_with_its_tariff_and_rules(db_url, tmp_path):
    ids = provider_and_org(db_url)
    deck = tmp_path / "retail.csv"
    deck.write_text(RETAIL_DECK, encoding="utf-8")
    run(db_url, "tariff", "import", str(deck), "--name", "retail")
    run(db_url, "plan", "create", "retail", "--tariff", "retail")
    run(db_url, "plan", "create", "resale", "--tariff", "retail", "--pricing", "relative",
        "--markup", "20", "--classes", "public_network,incoming", "--cut-off", "soft")  # fmt: skip
    listed = run_json(db_url, "plan", "list")
    assert [(p["plan"]["name"], p["plan"]["tariff"]) for p in listed] == [
        ("resale", "retail"),
        ("retail", "retail"),
    ]
    resale = listed[0]["plan"]
    assert (resale["pricing"], resale["markup_percent"], resale["cut_off"]) == (
        "relative",
        "20",
        "soft",
    )
    assert sorted(resale["allowed_call_classes"]) == ["incoming", "public_network"]
    provider, _ = ids
    run(db_url, "plan", "create", "own", "--tariff", "retail", "--provider", provider)
    assert [p["plan"]["name"] for p in run_json(db_url, "plan", "list")] == ["resale", "retail"]
    mine = run_json(db_url, "plan", "list", "--provider", provider)
    assert [p["plan"]["name"] for p in mine] == ["own", "resale", "retail"]
    table = run(db_url, "plan", "list").stdout  # a table, a row per plan
    assert "resale" in table and "retail" in table and "charging plans" in table


def test_cdr_post_help_lists_the_native_cdr_columns():
    text = " ".join(help_text("cdr", "post").split())
    assert ", ".join(NATIVE_COLUMNS) in text
    assert "required: id, to, start" in text


def test_tariff_import_progress_advances_as_rows_are_stored(db_url, tmp_path, monkeypatch):
    provider_and_org(db_url)
    rows = [f"{44_000 + n},Somewhere {n},voice,outbound,0.0{n % 10},60/60" for n in range(10)]
    deck = tmp_path / "deck.csv"
    deck.write_text(RETAIL_DECK.splitlines()[0] + "\n" + "\n".join(rows) + "\n", "utf-8")
    monkeypatch.setattr(tariffs, "INSERT_CHUNK", 3)
    seen: list[tuple[str, Any]] = []
    real_update, real_add = Progress.update, Progress.add_task
    real_insert = tariffs._insert_plain

    def add_task(self: Progress, description: str, **kw: Any) -> Any:
        seen.append(("total", kw.get("total")))
        return real_add(self, description, **kw)

    def update(self: Progress, task: Any, **kw: Any) -> None:
        if "completed" in kw:
            seen.append(("bar", kw["completed"]))
        real_update(self, task, **kw)

    def insert(conn: Any, tariff_id: int, chunk: list[Any]) -> None:
        seen.append(("stored", len(chunk)))
        real_insert(conn, tariff_id, chunk)

    monkeypatch.setattr(Progress, "add_task", add_task)
    monkeypatch.setattr(Progress, "update", update)
    monkeypatch.setattr(tariffs, "_insert_plain", insert)
    run(db_url, "tariff", "import", str(deck), "--name", "many")
    assert seen == [
        ("total", 10),
        ("stored", 3), ("bar", 3),
        ("stored", 3), ("bar", 6),
        ("stored", 3), ("bar", 9),
        ("stored", 1), ("bar", 10),
    ]  # fmt: skip
