"""telbill's Kamailio configuration: shipped in contrib/, filled in by
`telbill switch kamailio-config`, accepted by Kamailio's own check."""

from __future__ import annotations

import subprocess
from pathlib import Path

from switch_stack import DOC, ROOT, doc_blocks
from switch_world import require_switch_tools
from typer.testing import CliRunner

from telbill.adapters.switch.kamailio_config import template_text
from telbill.cli.main import app

ARGS = ["switch", "kamailio-config", "--telbill-url", "http://10.0.0.5:8000", "--api-key", "tb_x"]


def test_the_contrib_file_is_the_configuration_the_command_fills_in() -> None:
    shipped = (ROOT / "contrib" / "kamailio" / "telbill.cfg").read_text("utf-8")
    assert shipped == template_text()
    filled = CliRunner().invoke(app, ARGS)
    assert filled.exit_code == 0, filled.output
    assert '#!define TELBILL_URL "http://10.0.0.5:8000"' in filled.output
    assert filled.output.endswith(shipped.removeprefix("#!KAMAILIO\n"))


def test_kamailio_accepts_the_generated_configuration(tmp_path: Path) -> None:
    require_switch_tools()
    config = tmp_path / "telbill.cfg"
    done = CliRunner().invoke(app, [*ARGS, "--listen", "127.0.0.1:15060", "-o", str(config)])
    assert done.exit_code == 0, done.output
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(config)], cwd=tmp_path, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-2000:]


def test_a_value_kamailio_could_not_read_is_refused_with_one_error_line() -> None:
    for bad in (
        ["--listen", "localhost:5060"],
        ["--api-key", 'tb_"quoted'],
        ["--next-hop", "127.0.0.1:5070"],
        ["--rpc-allow", "anyone"],
    ):
        done = CliRunner().invoke(app, [*ARGS, *bad])
        assert done.exit_code == 1, bad
        assert done.output.startswith("error:"), done.output


def test_the_switch_page_has_every_command_block_the_tests_run() -> None:
    assert set(doc_blocks(DOC)) == {"key", "serve", "config", "kamailio", "register"}
