"""FreeSWITCH CDR readers: mod_cdr_csv (example template) and mod_json_cdr JSON."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.adapters.formats.cdr_freeswitch import read_freeswitch_csv, read_freeswitch_json
from telbill.domain.tariffs import Direction, RowError
from telbill.domain.usage import UsageEvent

ANSWERED = (
    '"Alice","1001","+442071234567","default","2026-01-05 11:00:00","2026-01-05 11:00:04",'
    '"2026-01-05 11:01:05","65","61","NORMAL_CLEARING","a1b2","b2c3","acme","PCMU","PCMU"\n'
)
UNANSWERED = (
    '"Bob","1002","+33142","default","2026-01-05 11:00:00","","2026-01-05 11:00:20",'
    '"20","0","NO_ANSWER","c3d4","","acme","PCMU","PCMU"\n'
)


def read_csv(text: str, **options: object) -> list[UsageEvent | RowError]:
    return list(read_freeswitch_csv(io.StringIO(text, newline=""), **options))  # type: ignore[arg-type]


def test_answered_leg_is_billed_for_billsec_from_answer() -> None:
    (event,) = read_csv(ANSWERED)
    assert isinstance(event, UsageEvent)
    assert event.id == "a1b2" and event.account == "acme"
    assert event.from_number == "1001" and event.to_number == "+442071234567"
    assert event.answer == datetime(2026, 1, 5, 11, 0, 4, tzinfo=UTC)
    assert event.duration_s == 61
    assert event.direction is Direction.OUTBOUND
    assert event.raw["hangup_cause"] == "NORMAL_CLEARING"


def test_blank_answer_stamp_is_an_unanswered_call() -> None:
    (event,) = read_csv(UNANSWERED)
    assert isinstance(event, UsageEvent)
    assert event.answer is None and event.duration_s is None


def test_local_stamps_are_read_in_the_switch_timezone() -> None:
    (event,) = read_csv(ANSWERED, timezone="Europe/London")
    assert isinstance(event, UsageEvent)
    assert event.start == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)  # GMT in January
    (summer,) = read_csv(ANSWERED.replace("2026-01-05", "2026-07-05"), timezone="Europe/London")
    assert isinstance(summer, UsageEvent)
    assert summer.start == datetime(2026, 7, 5, 10, 0, tzinfo=UTC)


def test_builtin_thirteen_column_template_is_accepted() -> None:
    short = ANSWERED.rsplit(',"PCMU","PCMU"', 1)[0] + "\n"
    (event,) = read_csv(short)
    assert isinstance(event, UsageEvent) and event.account == "acme"


def test_bad_rows_are_reported_by_line_and_the_file_goes_on() -> None:
    broken_time = ANSWERED.replace('"2026-01-05 11:00:04"', '"soon"')
    records = read_csv(ANSWERED + '"x","1"\n' + broken_time + UNANSWERED)
    assert [type(r) for r in records] == [UsageEvent, CdrRowError, CdrRowError, UsageEvent]
    assert [r.line for r in records if isinstance(r, RowError)] == [2, 3]
    assert "columns" in records[1].reason  # type: ignore[union-attr]
    assert "answer_stamp" in records[2].reason  # type: ignore[union-attr]


def test_custom_template_columns_and_header_row() -> None:
    text = (
        "uuid,destination_number,start_stamp,answer_stamp,end_stamp,billsec,accountcode\n"
        "u1,+4420,2026-01-05 11:00:00,2026-01-05 11:00:01,2026-01-05 11:00:11,10,acme\n"
    )
    (event,) = read_csv(text, columns=("uuid",))
    assert isinstance(event, UsageEvent)
    assert event.id == "u1" and event.duration_s == 10


def _json_cdr(uuid: str, answer_epoch: str = "1767610804", **extra: str) -> dict[str, object]:
    variables = {
        "uuid": uuid,
        "accountcode": "acme",
        "direction": "inbound",
        "start_epoch": "1767610800",
        "answer_epoch": answer_epoch,
        "end_epoch": "1767610865",
        "start_stamp": "2026-01-05%2011%3A00%3A00",
        "billsec": "61" if answer_epoch != "0" else "0",
        **extra,
    }
    return {
        "channel_data": {"direction": "inbound"},
        "variables": variables,
        "callflow": [{"caller_profile": {"caller_id_number": "1001",
                                         "destination_number": "+442071234567"}}],
    }  # fmt: skip


def test_json_lines_use_epochs_and_the_caller_profile_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cdr.jsonl"
    path.write_text(json.dumps(_json_cdr("j1")) + "\n" + json.dumps(_json_cdr("j2", "0")) + "\n")
    first, second = list(read_freeswitch_json(path))
    assert isinstance(first, UsageEvent) and isinstance(second, UsageEvent)
    assert first.start == datetime.fromtimestamp(1767610800, UTC)
    assert first.to_number == "+442071234567" and first.from_number == "1001"
    assert first.duration_s == 61
    # FreeSWITCH's "inbound" is relative to the switch: not a billing direction.
    assert first.direction is Direction.OUTBOUND
    assert second.answer is None


def test_json_telbill_direction_variable_sets_the_billing_direction(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_json_cdr("j1", telbill_direction="inbound"), indent=2))
    (event,) = list(read_freeswitch_json(path))
    assert isinstance(event, UsageEvent) and event.direction is Direction.INBOUND


def test_json_url_encoded_stamps_are_used_without_epochs(tmp_path: Path) -> None:
    cdr = _json_cdr("j1")
    variables = cdr["variables"]
    assert isinstance(variables, dict)
    for stage in ("start", "answer", "end"):
        del variables[f"{stage}_epoch"]
    variables["answer_stamp"] = "2026-01-05%2011%3A00%3A04"
    variables["end_stamp"] = "2026-01-05%2011%3A01%3A05"
    path = tmp_path / "a.json"
    path.write_text(json.dumps([cdr]))
    (event,) = list(read_freeswitch_json(path, timezone="Europe/Paris"))
    assert isinstance(event, UsageEvent)
    assert event.start == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_json_folder_reports_a_broken_file_and_reads_the_others(tmp_path: Path) -> None:
    (tmp_path / "a_1.json").write_text(json.dumps(_json_cdr("j1")))
    (tmp_path / "b_2.json").write_text("{not json")
    (tmp_path / "c_3.json").write_text(json.dumps({"variables": {"uuid": "x"}}))
    records = list(read_freeswitch_json(tmp_path))
    assert isinstance(records[0], UsageEvent)
    assert isinstance(records[1], RowError) and records[1].source == "b_2.json"
    assert isinstance(records[2], RowError) and "destination_number" in records[2].reason


def test_json_lines_bad_line_keeps_its_number() -> None:
    lines = [json.dumps(_json_cdr("j1")), "[1, 2", json.dumps({"nope": 1})]
    records = list(read_freeswitch_json(iter(lines)))
    assert isinstance(records[0], UsageEvent)
    assert isinstance(records[1], RowError) and records[1].line == 2
    assert isinstance(records[2], RowError) and "variables" in records[2].reason
