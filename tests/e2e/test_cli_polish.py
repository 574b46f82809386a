"""The CLI items of issue 17, each as an operator meets it: `plan create` with a tariff that
does not exist, `plan list`, `cdr post --help` naming the CDR columns, and `tariff import`'s
progress bar counting rows as they are stored. (`campaign` commands:
test_rule_campaign_on_package_minutes.py.)"""

from __future__ import annotations

import json
from typing import Any

from rich.progress import Progress
from rules_support import RETAIL_DECK, help_text, provider_and_org, run

from telbill.adapters.formats.cdr_native import NATIVE_COLUMNS
from telbill.services import tariffs


def test_plan_with_a_tariff_that_does_not_exist_is_refused_and_not_stored(db_url):
    provider_and_org(db_url)
    refused = run(db_url, "plan", "create", "cheap", "--tariff", "nope", ok=False)
    assert refused.exit_code == 1 and "no tariff named 'nope'" in refused.stderr
    assert json.loads(run(db_url, "plan", "list").stdout) == []


def test_plan_list_shows_every_plan_with_its_tariff(db_url, tmp_path):
    provider, _ = provider_and_org(db_url)
    deck = tmp_path / "retail.csv"
    deck.write_text(RETAIL_DECK, encoding="utf-8")
    run(db_url, "tariff", "import", str(deck), "--name", "retail")
    run(db_url, "plan", "create", "retail", "--tariff", "retail")
    run(db_url, "plan", "create", "resale", "--tariff", "retail", "--pricing", "relative",
        "--markup", "20")  # fmt: skip
    run(db_url, "plan", "create", "own", "--tariff", "retail", "--provider", provider)

    def listed(*provider_option: str) -> list[tuple[str, str, str]]:
        found = json.loads(run(db_url, "plan", "list", *provider_option).stdout)
        return [(p["name"], p["tariff"], p["pricing"]) for p in found]

    assert listed() == [("resale", "retail", "relative"), ("retail", "retail", "fixed")]
    assert [name for name, _, _ in listed("--provider", provider)] == ["own", "resale", "retail"]


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
