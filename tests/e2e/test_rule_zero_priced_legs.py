"""Issue 17, rule 2: a leg priced at zero consumes no package.

A call over the customer's own SIP trunk is priced 0 by the provider's deck (only speech
recognition would be billed): the call-time package keeps every second of it.
"""

from __future__ import annotations

import json
from decimal import Decimal

from rules_support import cdr_row, post_cdrs, retail_world, run, units_left


def test_zero_priced_call_leaves_the_call_time_package_untouched(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path)
    run(db_url, "package", "buy", ids["org"], "calls600")
    posted = post_cdrs(db_url, tmp_path, cdr_row("own-trunk", "+442079460000", 45))
    assert posted["posted"] == 1
    assert units_left(db_url, ids["org"], "s:call") == 600
    # A priced call still takes its seconds from the package (the package is in use).
    post_cdrs(db_url, tmp_path, cdr_row("priced", "+447700900123", 60))
    assert units_left(db_url, ids["org"], "s:call") == 540


def test_zero_priced_session_leaves_the_call_time_package_untouched(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path)
    run(db_url, "package", "buy", ids["org"], "calls600")
    authorize = ["session", "authorize", "--account", ids["user"], "--to", "+442079460000"]
    answer = json.loads(run(db_url, *authorize).stdout)  # session commands print JSON
    assert answer["allowed"]
    end = ["session", "end", str(answer["session_id"]), "--duration", "45"]
    ended = json.loads(run(db_url, *end).stdout)
    assert Decimal(ended["charged"]) == 0
    assert units_left(db_url, ids["org"], "s:call") == 600
