"""The three agents of issue 15, end to end on the embedded log (PostgreSQL event log and
projections), through the CLI a reviewer uses: one worker serves all three apps; an expense
under the limit runs on its own, a large one takes a manager then finance, a rejection's reason
reaches the agent; an email draft is edited by one `--set`; a question takes a plain-text
answer, and its default answers it at the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from countersign import bootstrap
from countersign.cli import build_parser
from countersign.settings import Settings
from engine.log.port import Topics
from engine.log.postgres import PostgresLog
from events.codec import Codec
from examples import expenses
from projections.live import LiveStore
from projections.runner import Projector
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

pytestmark = pytest.mark.postgres

APPS = ["examples.expenses:app", "examples.email_draft:app", "examples.shipping:app"]


@dataclass
class Stack:
    settings: Settings
    harness: Harness
    clock: Clock

    async def cli(self, *argv: str) -> tuple[int, str]:
        """`countersign ARGV...` in this process: exit code and what it printed."""
        args = build_parser().parse_args(list(argv))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code: int = await args.handler(self.settings, args)
        return code, out.getvalue()

    async def cli_json(self, *argv: str) -> Any:
        code, out = await self.cli(*argv, "--json")
        assert code == 0, out
        return json.loads(out)

    async def start(self, agent: str, payload: dict[str, Any], by: str = "ann") -> str:
        code, out = await self.cli("start", agent, "--input", json.dumps(payload), "--by", by)
        assert code == 0
        return out.strip()

    async def run(self, run_id: str, status: str) -> dict[str, Any]:
        """The run as `runs show --json` shows it, once it has `status`."""

        async def shown() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = await self.cli_json("runs", "show", run_id)
            except Exception:  # not projected yet
                return None
            return found if found["run"]["status"] == status else None

        result: dict[str, Any] = await eventually(shown, timeout=30, message=f"{run_id} {status}")
        return result

    async def open_request(self, run_id: str, level: int = 1) -> dict[str, Any]:
        async def waiting() -> dict[str, Any] | None:
            shown = await self.run(run_id, "waiting")
            found = [i for i in shown["open_interrupts"] if i["level"] == level]
            return found[0] if found else None

        request: dict[str, Any] = await eventually(waiting, timeout=30, message="a request")
        return request


@pytest.fixture
async def stack(
    pg_url: str, fresh_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    schema = f"a_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("COUNTERSIGN_PROJECTION_SCHEMA", schema)
    # The worker and projector log while the CLI prints: keep their lines off stdout.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    settings = Settings(
        home=tmp_path / "home",
        log_backend="postgres",
        database_url=pg_url,
        topic_prefix=fresh_prefix,
        partitions=2,
        worker_group=f"{fresh_prefix}.workers",
        projector_group=f"{fresh_prefix}.projector",
        projection_schema=schema,
    )
    topics = Topics(fresh_prefix)
    event_log = PostgresLog(pg_url, client_id="authoring-test")
    await event_log.start()
    await event_log.ensure_topics(topics, settings.partitions)
    store = await LiveStore.connect(pg_url, home=schema)
    projector = Projector(
        event_log, store, topics.runs, group=settings.projector_group, codec=Codec()
    )
    stop = asyncio.Event()
    projecting = asyncio.create_task(projector.run(stop))
    harness = Harness(event_log, topics, timeout=30.0)
    # The CLI signs as the home's development issuer, with proofs issued now: the worker
    # trusts that issuer and its clock starts today.
    trust = await bootstrap.trust(settings, development=True)
    clock = Clock(int(time.time() * 1_000_000))
    try:
        await harness.start_worker(
            bootstrap.load_apps(APPS), clock, group=settings.worker_group, trust=trust
        )
        yield Stack(settings, harness, clock)
    finally:
        await harness.halt_all()
        stop.set()
        await asyncio.wait_for(projecting, 30)
        await store.close()
        await event_log.close()


async def test_a_small_expense_runs_on_its_own_and_names_the_policy(stack: Stack) -> None:
    expense = {"employee": "ann", "amount": 80, "currency": "CHF", "purpose": "taxi"}
    run_id = await stack.start("expense", expense)

    shown = await stack.run(run_id, "completed")

    assert shown["run"]["output"]["status"] == "reimbursed"
    assert shown["run"]["output"]["approved_by"] == "policy:expense-manager@1"
    assert not shown["interrupts"]
    gate = [e for e in shown["timeline"] if e["type"] == "GateEvaluated"]
    assert "by expense-manager@1 rule amount<=100" in gate[0]["summary"]


async def test_a_large_expense_takes_a_manager_then_finance(stack: Stack) -> None:
    expense = {"employee": "ann", "amount": 1800, "currency": "USD", "purpose": "conference"}
    run_id = await stack.start("expense", expense)
    first = await stack.open_request(run_id, level=1)
    card = await stack.cli_json("inbox", "show", first["interrupt_id"])
    assert card["request"]["levels"] == 2
    assert card["request"]["amount"] == pytest.approx(1656.0)  # in euros, as the limit is
    assert card["request"]["reasoning"] == "ann paid for conference and has a valid receipt"
    assert card["may_decide"] == ["role:manager"]

    code, out = await stack.cli("decide", run_id, "approve", "--by", "maria", "--wait", "30")
    assert (code, out.split()[1]) == (0, "accepted")
    second = await stack.open_request(run_id, level=2)
    code, out = await stack.cli("decide", run_id, "approve", "--by", "maria", "--wait", "30")
    assert code == 2  # finance only, and not the manager again
    assert "maria is not among the approvers" in out or "maria already approved" in out
    code, _ = await stack.cli("decide", run_id, "approve", "--by", "frank", "--wait", "30")
    assert code == 0

    shown = await stack.run(run_id, "completed")
    assert shown["run"]["output"]["approved_by"] == "frank"
    assert [i["status"] for i in shown["interrupts"]] == ["approved", "approved"]
    assert second["approvers"] == ["role:finance"]


async def test_a_rejection_reaches_the_agent_which_tells_the_employee(stack: Stack) -> None:
    expense = {"employee": "ann", "amount": 300, "currency": "GBP", "purpose": "team dinner"}
    run_id = await stack.start("expense", expense)
    await stack.open_request(run_id)
    told = len(expenses.TOLD)

    code, _ = await stack.cli(
        "decide", run_id, "reject", "--by", "omar", "--reason", "no receipt for the wine"
    )
    assert code == 0

    shown = await stack.run(run_id, "completed")
    assert shown["run"]["output"] == {
        "status": "rejected",
        "reason": "no receipt for the wine",
        "by": "omar",
    }
    assert expenses.TOLD[told:] == [
        ("ann", "Your expense for team dinner was not reimbursed: no receipt for the wine")
    ]


async def test_a_reviewer_edits_one_argument_of_the_draft(stack: Stack, tmp_path: Path) -> None:
    run_id = await stack.start("reply", {"customer": "Ann", "to": "ann@example.com"})
    request = await stack.open_request(run_id)
    code, card = await stack.cli("inbox", "show", request["interrupt_id"])
    assert code == 0
    assert "within five working days." in card  # the whole body, not `body=…`
    draft = tmp_path / "draft.txt"
    draft.write_text("Dear Ann,\n\nyour refund left us today.\n\nBob")

    code, out = await stack.cli(
        "decide", run_id, "edit", "--by", "bob", "--set", f"body=@{draft}", "--wait", "30"
    )
    assert code == 0, out

    shown = await stack.run(run_id, "completed")
    assert shown["run"]["output"]["body"] == draft.read_text()
    assert shown["run"]["output"]["approved_by"] == "bob"
    [edit] = [a for a in await stack.cli_json("audit", "--run", run_id) if a["kind"] == "edit"]
    assert edit["diff"]["changed"]["body"]["to"] == draft.read_text()
    assert edit["edited_args"]["to"] == "ann@example.com"  # kept from the proposal


async def test_a_question_takes_a_plain_text_answer_from_whoever_started_it(stack: Stack) -> None:
    run_id = await stack.start("ship", {"order_id": "A-17", "weight_kg": 12.5}, by="ann")
    request = await stack.open_request(run_id)
    inbox = await stack.cli_json("inbox", "--for", "ann", "--role", "dispatch")
    assert [i["interrupt_id"] for i in inbox["items"]] == [request["interrupt_id"]]

    code, out = await stack.cli(
        "decide", run_id, "respond", "--by", "ann", "--response", "express", "--wait", "30"
    )
    assert code == 0, out

    shown = await stack.run(run_id, "completed")
    assert shown["run"]["output"] == {
        "method": "express",
        "booking": "bk-A-17",
        "defaulted": False,
    }
    # Statistics name questions and show every column.
    stats = {row["key"]: row for row in await stack.cli_json("stats", "--by", "tool")}
    assert (stats["(question)"]["requests"], stats["(question)"]["responded"]) == (1, 1)
    code, table = await stack.cli("stats", "--by", "tool")
    assert code == 0
    assert table.split("\n")[0].split()[1:11] == [
        "REQUESTS",
        "OPEN",
        "APPROVED",
        "EDITED",
        "REJECTED",
        "RESPONDED",
        "EXPIRED",
        "ESCALATED",
        "WITHDRAWN",
        "AUTO",
    ]
    [question_line] = [line for line in table.splitlines() if line.startswith("(question)")]
    assert question_line.split()[1:10] == ["1", "0", "0", "0", "0", "1", "0", "0", "0"]


async def test_nobody_answers_and_the_default_ships_it(stack: Stack) -> None:
    run_id = await stack.start("ship", {"order_id": "A-18", "weight_kg": 2.0})
    request = await stack.open_request(run_id)
    card = await stack.cli_json("inbox", "show", request["interrupt_id"])
    assert card["at_deadline"] == 'answered with its default: "standard"'

    stack.clock.advance(3601)

    shown = await stack.run(run_id, "completed")
    assert shown["run"]["output"] == {
        "method": "standard",
        "booking": "bk-A-18",
        "defaulted": True,
    }
    assert [i["status"] for i in shown["interrupts"]] == ["expired"]
