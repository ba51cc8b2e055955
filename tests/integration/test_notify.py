"""`countersign notify` against a local SMTP server (aiosmtpd) and a local webhook receiver, on
the embedded log with a real worker: every request reaches every channel its route names
once — through a receiver that is down for a while (retries with backoff), a restart, and two
notifiers sharing the partitions — with reminders, an escalation message, and reminders of a
decided request cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.notifier import Notifier, NotifierSettings
from consumers.notify_channels import Senders, SmtpSettings
from consumers.notify_plan import Routing
from consumers.notify_store import PostgresLedger
from countersign import bootstrap
from countersign.bootstrap import Runtime
from tests import web_agents
from tests.helpers import eventually
from tests.web_stack import settings_for, worker_options

pytestmark = [pytest.mark.postgres]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mailbox:
    messages: list[dict[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        parsed = message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        self.messages.append({k: str(v) for k, v in parsed.items()} | {
            "body": parsed.get_payload(decode=True).decode()})  # type: ignore[union-attr]  # fmt: skip
        return "250 OK"


@dataclass
class Receiver:
    """A Slack-style incoming webhook on 127.0.0.1:`port`, started and stopped at will."""

    port: int
    posts: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    async def hook(self, request: Request) -> Response:
        self.posts.append((request.headers["x-countersign-delivery"], await request.json()))
        return Response("ok")

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await eventually(lambda: self._server is not None and self._server.started, timeout=30)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


@dataclass
class Rig:
    runtime: Runtime
    ledger: PostgresLedger
    receiver: Receiver
    mailbox: Mailbox
    smtp: SmtpSettings
    routing: Routing

    @contextlib.asynccontextmanager
    async def notifier(self, group: str) -> AsyncIterator[Notifier]:
        senders = Senders(self.smtp)
        settings = NotifierSettings(base_url="https://inbox.example", group=group,
                                    idle_s=0.05, backoff_s=0.2, max_backoff_s=1.0)  # fmt: skip
        notifier = Notifier(self.runtime.log, self.runtime.topics, self.runtime.codec,
                            self.ledger, self.routing, senders, settings)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        try:
            yield notifier
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await senders.close()

    async def start(self, agent: str, payload: dict[str, object]) -> str:
        return await self.runtime.publisher().start_run(agent, payload, requested_by="bob")  # type: ignore[arg-type]


def routing(port: int, remind_before_s: list[float]) -> Routing:
    return Routing.parse({
        "channels": {"ops": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"},
                     "leads": {"type": "email", "to": ["leads@example.com"]}},
        "routes": [{"risk": ["high", "critical"], "channels": ["ops", "leads"]},
                   {"channels": ["ops"]}],
        "remind_before_s": remind_before_s,
    })  # fmt: skip


@contextlib.asynccontextmanager
async def rig(pg_url: str, home: Path, remind_before_s: list[float]) -> AsyncIterator[Rig]:
    prefix = f"n{uuid.uuid4().hex[:8]}"
    settings = settings_for(home, prefix, pg_url)
    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    receiver = Receiver(free_port())
    stop = asyncio.Event()
    try:
        async with bootstrap.connected(settings, client_id="notify-test") as runtime:
            options = await worker_options(settings, signed=False)
            worker = asyncio.create_task(runtime.worker(web_agents.app, **options).run(stop))
            ledger = await PostgresLedger.connect(pg_url, schema=prefix)
            try:
                yield Rig(runtime, ledger, receiver, mailbox,
                          SmtpSettings(host="127.0.0.1", port=smtp_port),
                          routing(receiver.port, remind_before_s))  # fmt: skip
            finally:
                stop.set()
                await asyncio.wait_for(worker, 60)
                await ledger.close()
                await receiver.stop()
    finally:
        controller.stop()


async def test_a_receiver_down_for_a_while_gets_everything_once_across_a_restart(
    pg_url: str, tmp_path: Path
) -> None:
    async with rig(pg_url, tmp_path, []) as r:
        async with r.notifier("g1") as first:
            runs = [await r.start("refund", {"order_id": f"D-{i}", "amount": 900 + i})
                    for i in range(2)]  # fmt: skip
            await eventually(lambda: len(r.mailbox.messages) == 2, timeout=60)

            async def retrying() -> bool:
                hooks = [e for e in await r.ledger.entries() if e.delivery.channel == "ops"]
                return len(hooks) == 2 and all(e.attempts >= 2 and e.status == "pending"
                                               for e in hooks)  # fmt: skip

            await eventually(retrying, timeout=60, interval=0.1)
            assert first.counts.retried >= 2
            await r.receiver.start()
            await eventually(lambda: len(r.receiver.posts) == 2, timeout=60)
        async with r.notifier("g1"):  # a restart: the same group and ledger
            runs.append(await r.start("refund", {"order_id": "D-9", "amount": 990}))
            await eventually(lambda: len(r.receiver.posts) == 3, timeout=60)
            await eventually(lambda: len(r.mailbox.messages) == 3, timeout=60)
    ids = [delivery for delivery, _ in r.receiver.posts]
    assert len(set(ids)) == 3, ids
    assert all(i.endswith("/ops/request") for i in ids)
    mail_ids = [m["X-Countersign-Delivery"] for m in r.mailbox.messages]
    assert len(set(mail_ids)) == 3
    body = r.receiver.posts[0][1]
    assert "https://inbox.example/runs/" in str(body["text"])
    attachment = body["attachments"][0]  # type: ignore[index]
    assert attachment["title_link"].startswith("https://inbox.example/runs/")
    mail = r.mailbox.messages[0]
    assert mail["Subject"].startswith("Approval needed: refund(")
    assert "https://inbox.example/runs/" in mail["body"]
    assert {m["body"].split("/runs/")[1].split("/")[0] for m in r.mailbox.messages} == set(runs)


async def test_reminders_escalations_and_a_decision_cancels_what_is_left(
    pg_url: str, tmp_path: Path
) -> None:
    async with rig(pg_url, tmp_path, [1.0, 23 * 3600.0]) as r:
        await r.receiver.start()
        async with r.notifier("g2"):
            wiring = await r.start("wiring", {"account": "acc-1", "amount": 10})
            refund = await r.start("refund", {"order_id": "C-1", "amount": 800})

            def kinds(run_id: str) -> Counter[str]:
                return Counter(body["text"].split(":")[0] for _, body in r.receiver.posts
                               if f"/runs/{run_id}/" in str(body["text"]))  # type: ignore[union-attr]  # fmt: skip

            await eventually(
                lambda: {"Approval needed", "Reminder", "Escalated"} <= set(kinds(wiring)),
                timeout=90, interval=0.2,
            )  # fmt: skip
            refund_request = await r.runtime.approvals().first_request(refund, timeout_s=30)
            publisher = r.runtime.publisher()
            position = await publisher.outcome_position(refund)
            decision = await publisher.submit_decision(
                refund, refund_request.interrupt_id, "approve", decided_by="alice"
            )
            await publisher.wait_for_outcome(decision, position, 30)

            async def cancelled() -> bool:
                entries = await r.ledger.entries(refund_request.interrupt_id)
                return any(e.delivery.kind.startswith("reminder-") and e.status == "cancelled"
                           for e in entries)  # fmt: skip

            await eventually(cancelled, timeout=60, interval=0.2)
        assert kinds(wiring)["Approval needed"] == 1
        assert kinds(wiring)["Reminder"] >= 1


async def test_two_notifiers_share_the_partitions_and_send_each_once(
    pg_url: str, tmp_path: Path
) -> None:
    async with rig(pg_url, tmp_path, []) as r:
        await r.receiver.start()
        async with r.notifier("g3"), r.notifier("g3"):
            for i in range(6):
                await r.start("refund", {"order_id": f"S-{i}", "amount": 700 + i})
            await eventually(lambda: len(r.receiver.posts) >= 6, timeout=90)
            await eventually(lambda: len(r.mailbox.messages) >= 6, timeout=90)
    ids = [delivery for delivery, _ in r.receiver.posts]
    assert len(ids) == len(set(ids)) == 6
    assert len(r.mailbox.messages) == 6
