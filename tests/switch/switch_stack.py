"""A real switch loop on 127.0.0.1: `telbill serve` <- Kamailio (telbill.cfg) <- SIPp.

`SwitchStack` starts telbill, Kamailio and a SIPp callee with the command blocks of
docs/switch.md (run by bash, values in the environment), on ports found free, and stops every
process it started by its PID. `place_calls` runs a SIPp caller and returns what each call saw.
Used by tests/switch and benchmarks/switch.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "switch.md"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TOOLS = ("kamailio", "sipp")
PACKAGES = "kamailio kamailio-utils-modules kamailio-extra-modules sip-tester"
_BLOCK = re.compile(r"<!-- switch-test: (?P<name>[a-z]+) -->\n```bash\n(?P<body>.*?)```", re.S)


MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
MODULE_FILES = ("http_client.so", "jansson.so", "dialog.so", "jsonrpcs.so", "xhttp.so")


def missing_tools() -> list[str]:
    """Programs and Kamailio modules the switch tests need that are not installed."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    return missing + [name for name in MODULE_FILES if not (MODULES / name).exists()]


def doc_blocks(path: Path = DOC) -> dict[str, str]:
    """The command blocks of docs/switch.md marked ``<!-- switch-test: NAME -->``."""
    return {m["name"]: m["body"].strip() for m in _BLOCK.finditer(path.read_text("utf-8"))}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIPp and Kamailio use either)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as check:
                check.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port


def _bin_dir() -> str:
    return str(Path(os.environ.get("VIRTUAL_ENV") or ROOT / ".venv") / "bin")


@dataclass
class Call:
    """What SIPp's caller and callee logged for one Call-ID (epoch seconds)."""

    call_id: str
    caller: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, S/R, cseq, line)
    callee: list[tuple[float, str, str, str]] = field(default_factory=list)
    messages: Path | None = None  # the caller's full SIP messages (every call of its run)

    def first(self, side: str, direction: str, start: str, cseq: str = "") -> float | None:
        rows = self.caller if side == "caller" else self.callee
        return next(
            (
                t
                for t, d, c, line in rows
                if d == direction and line.startswith(start) and cseq in c
            ),
            None,
        )

    @property
    def final_status(self) -> int | None:
        for _t, d, cseq, line in self.caller:
            if d == "R" and "INVITE" in cseq and line.startswith("SIP/2.0 "):
                code = int(line.split()[1])
                if code >= 200:
                    return code
        return None

    @property
    def answered_at(self) -> float | None:
        return self.first("caller", "R", "SIP/2.0 200", "INVITE")

    def bye_to(self, side: str) -> float | None:
        """When `side` received a BYE from the network."""
        return self.first(side, "R", "BYE ")

    def bye_from(self, side: str) -> float | None:
        return self.first(side, "S", "BYE ")

    @property
    def callee_rang(self) -> bool:
        return self.first("callee", "R", "INVITE ") is not None


def read_shortmsg(path: Path) -> dict[str, list[tuple[float, str, str, str]]]:
    """SIPp -trace_shortmsg: date, time, epoch, S/R, Call-ID, CSeq, first line."""
    rows: dict[str, list[tuple[float, str, str, str]]] = {}
    if not path.exists():
        return rows
    for line in path.read_text("latin-1").splitlines():
        parts = line.split("\t")
        if len(parts) >= 7:
            rows.setdefault(parts[4], []).append((float(parts[2]), parts[3], parts[5], parts[6]))
    return rows


class SwitchStack:
    """telbill + Kamailio + a SIPp callee, each a process of its own, in `run_dir`."""

    def __init__(self, run_dir: Path, database_url: str, provider_id: int) -> None:
        self.run_dir = run_dir
        self.database_url = database_url
        self.provider_id = provider_id
        self.blocks = doc_blocks()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {
            **os.environ,
            "PATH": f"{_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "200",
            "TELBILL_DATABASE_URL": database_url,
            "PROVIDER_ID": str(provider_id),
            "RUN_DIR": str(run_dir),
            "TELBILL_PORT": str(free_port()),
            "SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
            "RPC_PORT": str(free_port()),
            "CALLEE_PORT": str(free_port(socket.SOCK_DGRAM)),
            "UPDATE_EVERY": "2",
        }
        self.callee_log = run_dir / "callee_msgs.log"
        self._callers = 0

    # ------------------------------------------------------------------ processes

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def telbill_url(self) -> str:
        return f"http://127.0.0.1:{self.port('TELBILL_PORT')}"

    def run_block(self, name: str, extra: Mapping[str, str] | None = None) -> str:
        """Run a block of docs/switch.md to its end; returns its stdout."""
        env = {**self.env, **(extra or {})}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.blocks[name]], cwd=self.run_dir, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"docs block {name!r} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start_block(self, name: str) -> subprocess.Popen[bytes]:
        """Start a one-command block of docs/switch.md as a process of its own (exec: the
        PID is the command's)."""
        log = open(self.run_dir / f"{name}.log", "wb")  # noqa: SIM115 (the process keeps it)
        process = subprocess.Popen(
            ["bash", "-c", "exec " + self.blocks[name]], cwd=self.run_dir, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def start(self, *, register: bool = True, telbill: bool = True) -> None:
        self.env["TELBILL_SWITCH_API_KEY"] = self._switch_key()
        if telbill:
            self.start_block("serve")
            self._wait(lambda: self._http_ok("/healthz"), "telbill serve", "serve")
        self.run_block("config")
        self.start_block("kamailio")
        self._wait(self._rpc_ok, "kamailio", "kamailio")
        if register:
            self.run_block("register")
        self.start_callee()

    def _switch_key(self) -> str:
        """Run the `key` block and read the variable it sets."""
        script = self.blocks["key"] + '\nprintf "%s" "$TELBILL_SWITCH_API_KEY"'
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=self.run_dir, env=self.env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not done.stdout.startswith("tb_"):
            raise RuntimeError(f"docs block 'key' failed: {done.stderr[-2000:]}")
        return done.stdout

    def start_callee(self) -> None:
        log = open(self.run_dir / "callee.out", "wb")  # noqa: SIM115 (the process keeps it)
        self.processes["callee"] = subprocess.Popen(
            [
                "sipp", "-sf", str(SCENARIOS / "callee.xml"), "-i", "127.0.0.1",
                "-p", self.env["CALLEE_PORT"], "-nostdin", "-trace_shortmsg",
                "-shortmessage_file", str(self.callee_log),
            ],
            cwd=self.run_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        port = self.env["CALLEE_PORT"]
        self._wait(lambda: _udp_bound(int(port)), "SIPp callee", "callee")

    def _http_ok(self, path: str) -> bool:
        try:
            return httpx.get(self.telbill_url + path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def rpc(self, method: str, *params: object) -> object:
        url = f"http://127.0.0.1:{self.port('RPC_PORT')}/RPC"
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        return httpx.post(url, json=body, timeout=2).json()

    def _rpc_ok(self) -> bool:
        try:
            return "result" in self.rpc("core.uptime")  # type: ignore[operator]
        except (httpx.HTTPError, ValueError):
            return False

    def _wait(self, ready: object, what: str, process: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            if self.processes[process].poll() is not None:
                break
            time.sleep(0.1)
        log = self.run_dir / f"{process}.log"
        tail = log.read_text("latin-1")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{what} did not start:\n{tail}")

    def stop_process(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        children = _children_of(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in children:  # Kamailio's workers, uvicorn's: gone with their parent, or now
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> list[int]:
        """Stop every process started here by its PID; returns PIDs still alive (none)."""
        pids = [p.pid for p in self.processes.values()]
        for name in list(self.processes):
            self.stop_process(name)
        return [pid for pid in pids if _alive(pid)]

    # ------------------------------------------------------------------ calls

    def place_calls(
        self,
        account_id: int | list[int],
        to: str,
        *,
        calls: int = 1,
        hang_up_after_ms: int = 20_000,
        rate_per_s: float = 10,
        timeout_s: int = 60,
        background: bool = False,
        call_id_format: str | None = None,
    ) -> list[Call] | subprocess.Popen[bytes]:
        """SIPp caller(s) from `account_id` (several: taken in turn) to `to`: each call hangs
        up after `hang_up_after_ms` unless the network sends BYE first. Returns each call's
        messages, or (background) the SIPp process to `collect` later. `call_id_format`:
        SIPp's -cid_str (default %u-%p@%s)."""
        self._callers += 1
        name = f"caller{self._callers}"
        scenario = self.run_dir / f"{name}.xml"
        text = (SCENARIOS / "caller.xml").read_text("utf-8")
        text = text.replace("HANG_UP_AFTER_MS", str(hang_up_after_ms))
        if isinstance(account_id, list):  # one account a line, in turn
            accounts_file = self.run_dir / f"{name}_accounts.csv"
            accounts_file.write_text("SEQUENTIAL\n" + "".join(f"{a};\n" for a in account_id))
            text = text.replace("ACCOUNT_REF", "[field0]").replace(
                '<Global variables="account"/>', ""
            )
            who = ["-inf", str(accounts_file)]
        else:
            text = text.replace("ACCOUNT_REF", "[$account]")
            who = ["-set", "account", str(account_id)]
        scenario.write_text(text, "utf-8")
        log = self.run_dir / f"{name}_msgs.log"
        command = [
            "sipp", "-sf", str(scenario), f"127.0.0.1:{self.env['SIP_PORT']}",
            "-s", to, *who, "-i", "127.0.0.1",
            "-p", str(free_port(socket.SOCK_DGRAM)), "-m", str(calls), "-r", f"{rate_per_s:g}",
            "-nostdin", "-timeout", f"{timeout_s}s", "-trace_shortmsg", "-shortmessage_file",
            str(log), "-trace_msg", "-message_file", str(log.with_suffix(".msg")),
        ]  # fmt: skip
        if call_id_format:
            command += ["-cid_str", call_id_format]
        out = open(self.run_dir / f"{name}.out", "wb")  # noqa: SIM115 (the process keeps it)
        process = subprocess.Popen(
            command, cwd=self.run_dir, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        process.log = log  # type: ignore[attr-defined]
        if background:
            self.processes[name] = process
            return process
        self.processes[name] = process
        return self.collect(process, timeout_s + 10)

    def collect(self, process: subprocess.Popen[bytes], timeout_s: float = 70) -> list[Call]:
        try:
            process.wait(timeout=timeout_s)
        finally:
            for name, known in list(self.processes.items()):
                if known is process:
                    self.stop_process(name)
        time.sleep(0.3)  # the callee's last 200 OK, telbill's end report
        mine = read_shortmsg(process.log)  # type: ignore[attr-defined]
        callee = read_shortmsg(self.callee_log)
        messages = process.log.with_suffix(".msg")  # type: ignore[attr-defined]
        return [
            Call(cid, rows, callee.get(cid, []), messages) for cid, rows in sorted(mine.items())
        ]


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        lines = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in (int(x) for x in lines):
        found.append(child)
        found.extend(_children_of(child))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def running_stack(
    run_dir: Path, database_url: str, provider_id: int, **start: bool
) -> Iterator[SwitchStack]:
    stack = SwitchStack(run_dir, database_url, provider_id)
    try:
        stack.start(**start)
        yield stack
    finally:
        left = stack.stop()
        assert not left, f"processes still alive: {left}"
