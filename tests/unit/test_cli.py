"""The CLI's promises that need no server: flags, tables, terminal safety, library logs."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from countersign import render
from countersign.cli import build_parser, main
from countersign.logging import configure_logging
from projections.rows import AuditRow, RunRow
from projections.stats import StatRow

AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_every_command_accepts_json() -> None:
    leaves = list(_leaves(build_parser()))

    missing = [" ".join(path) for path, p in leaves if "--json" not in p._option_string_actions]

    assert len(leaves) > 25
    assert missing == []


def test_decide_waits_by_default_and_no_wait_opts_out() -> None:
    parser = build_parser()
    waits = parser.parse_args(["decide", "r", "i", "approve", "--by", "alice"])
    publishes = parser.parse_args(["decide", "r", "i", "approve", "--by", "a", "--no-wait"])

    assert (waits.wait, waits.no_wait) == (30.0, False)
    assert publishes.no_wait is True
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(["decide", "r", "i", "approve", "--by", "a", "--no-wait", "--wait"])


def _end(line: str, word: str) -> int:
    return line.index(word) + len(word)


def _run(run_id: str, agent: str, requester: str) -> RunRow:
    return RunRow(run_id=run_id, agent=agent, agent_version="1", requested_by=requester,
                  status="waiting", started_at=AT, updated_at=AT, finished_at=None, last_seq=4,
                  open_interrupts=1, input={}, output=None, error=None)  # fmt: skip


def test_runs_list_has_a_header_and_aligned_columns() -> None:
    text = render.runs([_run("a" * 36, "refund", "bob"), _run("b" * 36, "a-longer-agent", "x")])

    lines = text.splitlines()
    assert lines[0].split() == [
        "RUN",
        "AGENT",
        "VERSION",
        "STATUS",
        "REQUESTED",
        "BY",
        "STARTED",
        "FINISHED",
    ]
    assert lines[1].index("waiting") == lines[2].index("waiting") == lines[0].index("STATUS")
    assert lines[1].index("2026") == lines[2].index("2026") == lines[0].index("STARTED")


def test_audit_has_a_header_and_aligned_columns() -> None:
    rows = [
        AuditRow(run_id="r1", seq=3, at=AT, action="gate_evaluated", actor="policy:limit@1",
                 kind="approve", tool="refund", reason="over 500"),
        AuditRow(run_id="r1", seq=12, at=AT, action="decision_accepted", actor="alice",
                 kind="edit", tool="refund", diff={"changed": {"amount": {"from": 9, "to": 5}}}),
    ]  # fmt: skip

    text = render.audit(rows)

    lines = text.splitlines()
    assert lines[0].split() == ["AT", "RUN", "SEQ", "ACTION", "ACTOR", "KIND", "TOOL", "WHY"]
    assert lines[1].index("gate_evaluated") == lines[2].index("decision_accepted")
    assert lines[1].index("over 500") == lines[2].index("diff ") == lines[0].index("WHY")
    seq_end = _end(lines[0], "SEQ")  # numbers are right-aligned under their header
    assert (lines[1][seq_end - 2 : seq_end], lines[2][seq_end - 2 : seq_end]) == (" 3", "12")


def test_stats_show_open_requests_in_a_column_of_their_own() -> None:
    rows = [
        StatRow(dimension="tool", key="refund", requests=5, open=2, approved=3, approval_rate=1.0),
        StatRow(dimension="tool", key="send_email", requests=12, open=0, rejected=12),
    ]

    text = render.stats(rows, "tool")

    head, *lines = text.splitlines()
    assert head.split()[:3] == ["TOOL", "REQUESTS", "OPEN"]
    open_end = _end(head, "OPEN")
    assert [line[open_end - 1] for line in lines] == ["2", "0"]
    assert lines[0].index("100%") + 4 == _end(head, "RATE")


def test_values_from_the_log_cannot_drive_the_terminal() -> None:
    hostile = "ok\x1b[2J\x1b]0;pwned\x07\r\nsecond line"

    shown = render.table(("WHY",), [(hostile,)])

    assert not {"\x1b", "\r", "\x07"} & set(shown)
    assert "\\x1b[2J" in shown
    assert len(shown.splitlines()) == 2


def test_library_lines_are_rendered_like_ours_and_retried_errors_are_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Retried(Exception):
        retriable = True  # the attribute aiokafka's errors carry

    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    configure_logging("json", "info")
    coordinator.error("Group Coordinator Request failed: %s", Retried("CoordinatorNotAvailable"))
    coordinator.info("chatter")
    coordinator.warning("Heartbeat failed: %s", "real trouble")
    configure_logging("json", "debug")
    coordinator.error("Group Coordinator Request failed: %s", Retried("CoordinatorNotAvailable"))

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["logger"], line["event"][:16]) for line in lines] == [
        ("warning", "aiokafka.consumer.group_coordinator", "Heartbeat failed"),
        ("debug", "aiokafka.consumer.group_coordinator", "Group Coordinato"),
    ]


def test_a_retried_line_that_keeps_coming_passes_as_a_warning_once_a_minute() -> None:
    """aiokafka retries some requests forever (a position reset asking a stale leader): the
    line is DEBUG while it may resolve itself, a WARNING once it has lasted a minute."""
    from countersign.logging import PERSISTENT_S, _LibraryLevels

    class Retried(Exception):
        retriable = True

    levels = _LibraryLevels(logging.WARNING)

    def line(at: float, msg: str = "Failed fetch offsets from %s: %s") -> logging.LogRecord:
        record = logging.LogRecord(
            "aiokafka.consumer.fetcher", logging.ERROR, __file__, 1, msg,
            (1, Retried("NotLeaderForPartition")), None,
        )  # fmt: skip
        record.created = at
        return record

    t0 = 1_000.0
    every_5s = [line(t0 + s) for s in range(0, 185, 5)]
    passed = [record for record in every_5s if levels.filter(record)]

    assert [record.created - t0 for record in passed] == [60, 120, 180]
    assert {record.levelname for record in passed} == {"WARNING"}
    assert passed[0].getMessage() == (
        "Failed fetch offsets from 1: NotLeaderForPartition (retried 13 times in 60 s)"
    )
    assert every_5s[0].levelname == "DEBUG"
    # Another line, and the same one after a minute's pause, start again from DEBUG.
    assert not levels.filter(line(t0 + 185, "Could not send %s: %r"))
    assert not levels.filter(line(t0 + 180 + PERSISTENT_S + 1))
    assert not levels.filter(line(t0 + 180 + 2 * PERSISTENT_S))


def test_an_unread_fencing_is_debug_and_any_other_unread_error_stays_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """asyncio's own line for a future whose exception nobody read, as a fenced aiokafka
    producer leaves them (its batches' futures, failed all at once)."""
    from aiokafka.errors import KafkaConnectionError, ProducerFenced  # noqa: TID251

    async def drop_failed(error: Exception) -> None:
        future = asyncio.get_running_loop().create_future()
        future.set_exception(error)
        del future  # never awaited: asyncio logs it when the future is collected
        gc.collect()

    for level in ("info", "debug"):
        configure_logging("json", level)
        asyncio.run(drop_failed(ProducerFenced()))
        asyncio.run(drop_failed(KafkaConnectionError("broker gone")))

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    unread = [line for line in lines if line["event"].startswith("Future exception")]
    shown = [(line["level"], line["event"].splitlines()[1][:50]) for line in unread]
    assert shown == [
        ("error", "future: <Future finished exception=KafkaConnection"),
        ("debug", "future: <Future finished exception=ProducerFenced("),
        ("error", "future: <Future finished exception=KafkaConnection"),
    ]


def test_kafka_up_prints_no_export_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from countersign import local_kafka

    broker = SimpleNamespace(
        bootstrap="127.0.0.1:39092", pid=42, state_dir=tmp_path / "kafka", secure=False
    )
    monkeypatch.setattr(local_kafka, "start", lambda state_dir, **options: broker)
    monkeypatch.setenv("COUNTERSIGN_HOME", str(tmp_path))

    assert main(["kafka", "up"]) == 0

    out = capsys.readouterr().out
    assert "export COUNTERSIGN" not in out
    assert "kafka running at 127.0.0.1:39092" in out
    assert f"COUNTERSIGN_HOME={tmp_path}" in out


def test_the_inbox_has_a_header_and_aligned_columns() -> None:
    from projections.inbox import InboxItem
    from projections.rows import InterruptRow

    def request(interrupt_id: str, title: str, amount: float) -> InboxItem:
        row = InterruptRow(interrupt_id=interrupt_id, run_id="r", seq=4, call=1, kind="tool",
                           title=title, tool="refund", args={}, risk="high", amount=amount,
                           policy="limit@1", approvers=("role:lead",), allowed=("approve",),
                           deadline=AT, on_timeout="reject", level=1, quorum=1, votes=0,
                           status="open", raised_at=AT, closed_at=None, decided_by=None,
                           decision_kind=None, reason=None, agent="refund")  # fmt: skip
        return InboxItem(request=row, sla="on_time", age_s=5.0, deciders=("role:lead",))

    text = render.inbox([request("i-1", "refund(9)", 9.0), request("i-22", "x" * 30, 2400.0)],
                        closed=False)  # fmt: skip

    head, *lines = text.splitlines()
    assert head.split()[:4] == ["INTERRUPT", "SLA", "AGE", "DEADLINE"]
    assert head.endswith("MAY DECIDE")
    assert lines[0].index("on_time") == lines[1].index("on_time") == head.index("SLA")
    assert lines[0].index("role:lead") == lines[1].index("role:lead") == head.index("MAY DECIDE")
    amount_end = head.index("AMOUNT") + len("AMOUNT")
    assert [line[:amount_end].split()[-1] for line in lines] == ["9.00", "2,400.00"]
