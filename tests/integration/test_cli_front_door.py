"""The CLI as a new user meets it: nothing configured, the embedded default, real processes.

Each test has a home of its own (COUNTERSIGN_HOME), so its own embedded PostgreSQL, started
by the commands themselves, as on a laptop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.postgres

ORDER = '{"order_id": "A-17", "amount": 2400}'


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's tmp dir: see tests/conftest.py (pgserver opens the ancestors).
    root = Path(tempfile.mkdtemp(prefix="countersign-cli-"))
    try:
        yield root / "home"
    finally:
        from countersign import local_pg

        local_pg.stop_embedded(root / "home" / "pg")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cli(home: Path, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {"COUNTERSIGN_HOME": str(home), "COUNTERSIGN_LOG_FORMAT": "json"}
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


async def _status(cli: Processes, run_id: str, wanted: str) -> dict[str, object]:
    def shown() -> dict[str, object] | None:
        result = cli.run("runs", "show", run_id, "--json", check=False)
        if result.returncode != 0:
            return None
        view = _json(result)
        return view if view["run"]["status"] == wanted else None  # type: ignore[index]

    found: dict[str, object] = await eventually(shown, timeout=60, interval=0.3)
    return found


async def test_verify_all_is_clean_after_the_demo_and_the_walk_through(cli: Processes) -> None:
    """Found by a new user: the demo's runs (topics demo-<hex>.*) landed in the projections
    the walk-through's runs (topics countersign.*) use; `verify --all` reads one prefix's log
    and reported the demo's run as broken."""
    assert cli.run("demo", "--auto", "approve").returncode == 0
    cli.spawn("worker", "worker", "--app", "examples.refund:app")
    cli.spawn("projector", "projector")
    run_id = cli.run("start", "refund", "--input", ORDER, "--by", "bob").stdout.strip()
    shown = await _status(cli, run_id, "waiting")
    [interrupt] = shown["open_interrupts"]  # type: ignore[misc]
    decided = cli.run("decide", run_id, interrupt["interrupt_id"], "approve", "--by", "alice",
                      "--wait", "60", "--json")  # fmt: skip
    assert _json(decided)["accepted"] is True
    await _status(cli, run_id, "completed")

    tries: list[subprocess.CompletedProcess[str]] = []

    def clean() -> bool:
        # A partition's first anchor follows once it has been idle anchor_every_s (2 s);
        # before it, verify names a partition with events and no anchor, as it must.
        tries.append(cli.run("verify", "--all", "--json", check=False))
        return tries[-1].returncode == 0

    with contextlib.suppress(AssertionError):  # the last try is asserted below
        await eventually(clean, timeout=20, interval=0.5)
    verified = tries[-1]

    assert (verified.returncode, _json(verified)["broken"], _json(verified)["runs"]) == (0, 0, 1)


async def test_decide_waits_for_the_outcome_and_a_refusal_exits_non_zero(cli: Processes) -> None:
    cli.spawn("worker", "worker", "--app", "examples.refund:app")
    run_id = cli.run("start", "refund", "--input", ORDER, "--by", "bob").stdout.strip()
    card = cli.run("approvals", "--run", run_id, "--wait", "60").stdout
    interrupt = re.search(r"^interrupt  (\S+)$", card, re.MULTILINE)
    assert interrupt is not None, card

    accepted = cli.run("decide", run_id, interrupt[1], "approve", "--by", "alice")
    refused = cli.run("decide", run_id, interrupt[1], "reject", "--by", "carol", check=False)
    published = cli.run("decide", run_id, interrupt[1], "reject", "--by", "carol", "--no-wait")

    assert accepted.stdout.strip().endswith(" accepted")
    assert refused.returncode == 2
    assert "refused: interrupt" in refused.stdout
    assert "already decided" in refused.stdout
    assert re.fullmatch(r"[0-9a-f-]{36}", published.stdout.strip())


def test_long_running_processes_say_which_log_they_serve_and_log_json_only(
    cli: Processes,
) -> None:
    cli.spawn("worker", "worker", "--app", "examples.refund:app")
    cli.spawn("projector", "projector")
    cli.run("start", "refund", "--input", ORDER, "--by", "bob")
    cli.end_all()

    worker, projector = cli.log_lines("worker"), cli.log_lines("projector")
    first = json.loads(worker[0])
    assert first["event"] == "worker_serving"
    assert first["log"].startswith("PostgreSQL (embedded, ")
    assert "no Kafka configured" in first["why"]
    assert (first["prefix"], first["app"]) == ("countersign", "examples.refund:app")
    served = json.loads(projector[0])
    assert (served["event"], served["log"], served["schema"]) == (
        "projector_serving",
        first["log"],
        "public",
    )
    assert all(line.startswith("{") for line in worker + projector)  # library lines too


def test_a_query_stops_the_embedded_database_it_started_and_only_that(cli: Processes) -> None:
    assert cli.run("inbox").stdout.strip() == "(nothing in the inbox)"
    assert _json(cli.run("db", "status", "--json", check=False))["running"] is False

    cli.run("db", "up")
    cli.run("runs", "list")

    assert _json(cli.run("db", "status", "--json"))["running"] is True
    cli.run("db", "down")


def test_a_query_leaves_the_database_to_a_process_that_found_it_running(
    cli: Processes, home: Path
) -> None:
    """A worker starting beside a query can find the server the query started and not be
    connected yet when the query ends: its share, not its connection, keeps the server up."""
    user = subprocess.Popen(
        [sys.executable, "-c", _A_USER_NOT_YET_CONNECTED, str(home / "pg")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert user.stdout is not None
        assert user.stdout.readline().strip() == "shared"  # before the query starts it
        cli.run("runs", "list")
        assert _json(cli.run("db", "status", "--json"))["running"] is True
    finally:
        user.kill()
        user.wait()
    cli.run("db", "down")
    cli.run("runs", "list")  # starts it again; nobody else uses it now
    assert _json(cli.run("db", "status", "--json", check=False))["running"] is False


_A_USER_NOT_YET_CONNECTED = """
import sys, time
from pathlib import Path
from countersign import local_pg
local_pg.share(Path(sys.argv[1]))
print("shared", flush=True)
time.sleep(600)
"""


def _demo_run_id(out: str) -> str:
    found = re.search(r"\(run ([0-9a-f-]{36})\)", out)
    assert found is not None, out
    return found[1]


def _demo_run(cli: Processes, run_id: str) -> dict[str, object]:
    schema = cli.env | {"COUNTERSIGN_PROJECTION_SCHEMA": "countersign_demo"}
    shown = subprocess.run(
        [sys.executable, "-m", "countersign.cli", "runs", "show", run_id, "--json"],
        env=schema,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    run = json.loads(shown.stdout)["run"]
    assert isinstance(run, dict)
    return run


def test_a_demo_without_an_answer_cancels_its_run(cli: Processes) -> None:
    aborted = cli.run("demo", check=False)  # stdin is empty: no answer comes

    assert aborted.returncode == 1
    assert "no answer on stdin" in aborted.stderr
    run = _demo_run(cli, _demo_run_id(aborted.stdout))
    assert run["status"] == "cancelled"


def test_a_demo_stopped_with_ctrl_c_at_the_prompt_cancels_its_run(
    cli: Processes, tmp_path: Path
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "countersign.cli", "demo"],
        env=cli.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "demo.err").open("wb"),
        text=True,
    )
    assert demo.stdout is not None
    seen = ""
    try:
        while "Your decision" not in seen:
            chunk = demo.stdout.read(1)
            assert chunk, f"the demo ended before asking:\n{seen}"
            seen += chunk
        demo.send_signal(signal.SIGINT)
        seen += demo.stdout.read()
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    assert code == 130
    assert _demo_run(cli, _demo_run_id(seen))["status"] == "cancelled"
    assert "was cancelled" in (tmp_path / "demo.err").read_text()
