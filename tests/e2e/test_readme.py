"""The README's tour is run as written: every ```bash block, in order, in one shell.

The blocks run in a fresh folder holding `examples/` (a link to the checkout's), with this
virtual environment's `bin` first on PATH (the README says to activate `.venv`) and port
8000 replaced by a free one. `sh` blocks are the two `make` commands, which CI runs itself.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def bash_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_is_a_short_users_guide() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) < 15_000
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]*)", text):
        assert (ROOT / link).exists(), link


def test_every_command_block_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    blocks = bash_blocks()
    assert len(blocks) >= 6
    port = str(free_port())
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for number, block in enumerate(blocks, start=1):
        script += [f"echo '### block {number}'", block.replace("8000", port)]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELBILL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # ~45 s on a quiet machine; CLI start-up dominates under load
    )
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert f"### block {len(blocks)}" in out
    assert "cost 0.101500 USD" in out  # the quote: 61 s to a UK mobile at 0.09/min + 0.01
    assert "8 records: 7 posted, 0 already posted, 1 quarantined" in out
    assert "c-0008" in out and "no_rate" in out  # the call the tariff has no rate for
    assert "calls of account 3 in 2026-11" in out
    assert '"allowed":true' in out.replace(" ", "")  # the API's authorisation
    assert '"charged": "0.122500"' in out  # 75 s at 0.09/min + 0.01, settled exactly
    assert "ledger reconciles:" in out
    assert (tmp_path / "rated.csv").read_text().count("\n") == 9
