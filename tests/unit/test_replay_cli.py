"""`countersign replay --file`: no Kafka, no PostgreSQL; exit codes; the debugger in the
agent's own code, driven by a scripted pdb session on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from countersign.cli import main

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = ROOT / "tests" / "histories"
APPROVED = str(HISTORIES / "refund-approved.cshist")
EXAMPLE = (ROOT / "examples" / "refund.py").read_text().splitlines()


def example_line(code: str) -> int:
    """The line of examples/refund.py that holds `code` (the example may move)."""
    return next(n for n, text in enumerate(EXAMPLE, 1) if code in text)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--log-level", "warning", *argv])
    out, _ = capsys.readouterr()
    return code, out


def test_replay_from_a_file_needs_no_servers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERSIGN_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("COUNTERSIGN_KAFKA_BOOTSTRAP", "127.0.0.1:1")

    code, out = _run(capsys, "replay", "--file", APPROVED, "--app", "examples.refund:app")

    assert code == 0
    assert "identical: the code reproduces all 9 events" in out
    assert '✓ code makes tool refund {"amount":2400,"order_id":"A-17"}' in out


def test_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        capsys,
        "replay",
        "--file",
        APPROVED,
        "--app",
        "tests.replay_variants:arguments_changed",
        "--json",
    )

    report = json.loads(out)
    assert code == 3
    assert (report["outcome"], report["seq"], report["cause"]) == ("diverges", 3, "arguments")
    assert report["divergence"]["changes"] == [
        {"name": "amount", "recorded": "2400", "new": "2160.0"}
    ]
    code, out = _run(
        capsys, "replay", "--file", APPROVED, "--app", "tests.replay_variants:version_two"
    )
    assert code == 3
    assert "PARKS: the run started with refund v1" in out
    assert main(["replay", "--file", "/no/such/file", "--app", "examples.refund:app"]) == 1


def test_until_shows_the_state_and_where_the_agent_waits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(
        capsys, "replay", "--file", APPROVED, "--app", "examples.refund:app", "--until", "4"
    )

    assert code == 0
    assert "waiting   for" in out
    refund_line = example_line("result = await ctx.tool(")
    assert f"agent     waits at examples/refund.py:{refund_line} in refund_agent" in out
    assert "            amount = 2400" in out


def _replay_with_stdin(commands: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COUNTERSIGN_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "countersign.cli", "replay", "--file", APPROVED, *argv],
        input=commands,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def test_break_opens_pdb_in_the_agent_with_its_locals() -> None:
    done = _replay_with_stdin(
        'p order.value["customer"]\np input["amount"]\nwhere\nc\n',
        "--app",
        "examples.refund:app",
        "--break",
        "2",
        "--brief",
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "--- countersign replay: the agent has the result of call 0 ---" in out
    assert f"examples/refund.py({example_line('if not order.ok:')})refund_agent()" in out
    assert "'c-42'" in out
    assert "2400" in out
    assert "identical: the code reproduces all 9 events" in out


def test_pdb_stops_at_the_divergence_in_the_changed_code() -> None:
    done = _replay_with_stdin(
        "p amount\nc\n", "--app", "tests.replay_variants:arguments_changed", "--pdb", "--brief"
    )

    assert done.returncode == 3, done.stderr
    out = done.stdout
    assert "call 1 diverges from the history" in out
    assert "tests/replay_variants.py(" in out
    assert "refund_rounding_down()" in out
    assert "(Pdb) 2160.0" in out


def test_values_from_a_history_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from events.codec import Codec
    from events.history_file import write_history
    from events.run_events import RunStarted
    from tests.replay_helpers import chained
    from tests.unit.test_rerun import record

    history = record()
    first = history[0]
    assert isinstance(first.payload, RunStarted)
    hostile = replace(first, payload=replace(first.payload, requested_by="bob\x1b[2J\x1b]0;x\x07"))
    path = tmp_path / "hostile.cshist"
    path.write_bytes(write_history(Codec(), chained(Codec(), [hostile, *history[1:]])))

    for argv in (["replay", "--file", str(path), "--app", "tests.unit.test_rerun:APP"],
                 ["timeline", "--file", str(path)]):  # fmt: skip
        main(["--log-level", "warning", *argv])
        out = capsys.readouterr().out
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "bob\\x1b[2J" in out
