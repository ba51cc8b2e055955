"""`countersign serve` and `countersign notify` as the processes docker-compose runs, beside a
worker and a projector (`countersign dev --no-web`) on the embedded log: a user made with
`web-users add` approves through the API of `serve`, the run completes, and `notify` has
sent the request to e-mail (a local aiosmtpd) with a link to the card in `serve`, which signs
with the home's key (the development issuer `dev` made)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.helpers import eventually
from tests.integration.test_notify import Mailbox, free_port
from tests.processes import ROOT, Processes
from tests.web_stack import login

pytestmark = pytest.mark.postgres
PASSWORD = "a long enough password"


@pytest.fixture
def cli(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{fresh_prefix}.projector",
        "COUNTERSIGN_PROJECTION_SCHEMA": f"c_{uuid.uuid4().hex[:10]}",
        "COUNTERSIGN_NOTIFY_SCHEMA": f"n_{uuid.uuid4().hex[:10]}",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
        "COUNTERSIGN_WEB_PORT": str(free_port()),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


async def printed(cli: Processes, name: str, pattern: str) -> re.Match[str]:
    def found() -> re.Match[str] | None:
        return next(filter(None, (re.search(pattern, x) for x in cli.log_lines(name))), None)

    match: re.Match[str] = await eventually(found, timeout=90, interval=0.3)
    return match


async def test_serve_and_notify_beside_a_worker(cli: Processes) -> None:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        cli.env |= {"COUNTERSIGN_SMTP_HOST": "127.0.0.1", "COUNTERSIGN_SMTP_PORT": str(smtp.port)}
        add = ["web-users", "add", "alice", "--role", "support-lead", "--password-stdin"]
        added = cli.run(*add, stdin=f"{PASSWORD}\n")
        assert "alice saved" in added.stdout
        cli.spawn("dev", "dev", "--app", "examples.refund:app", "--no-web")
        await printed(cli, "dev", r"^worker \(")  # the home's key is made by then
        cli.spawn("serve", "serve", "--app", "examples.refund:app")
        cli.spawn("notify", "notify", "--routing", str(ROOT / "examples" / "notify.json"))
        url = (await printed(cli, "serve", r"^web inbox: (\S+?)/?$")).group(1)
        await printed(cli, "notify", r"^notifier running \(leads\)")
        run_id = cli.run("start", "refund", "--input", json.dumps({"order_id": "C-1",
                         "amount": 2400}), "--by", "bob").stdout.strip()  # fmt: skip
        async with httpx.AsyncClient(base_url=url, timeout=60) as alice:
            health = (await alice.get("/health")).json()
            assert health["ok"] is True
            assert health["signing"].startswith("signed as"), health  # the home's key
            assert (await alice.get("/api/inbox")).status_code == 401
            await login(alice, "alice", PASSWORD)
            alice.headers["X-CSRF-Token"] = (await alice.get("/api/me")).json()["csrf_token"]

            async def listed() -> dict[str, str] | None:
                items = (await alice.get("/api/inbox", params={"mine": "1"})).json()["items"]
                return next((i for i in items if i["run_id"] == run_id), None)

            item = await eventually(listed, timeout=90, interval=0.3)
            card = f"/runs/{run_id}/requests/{item['interrupt_id']}"
            mails = await eventually(
                lambda: [m for m in mailbox.messages if card in m["body"]], timeout=90
            )
            assert f"{url}{card}" in mails[0]["body"]
            approved = await alice.post(
                f"/api/{card.lstrip('/')}/decision", json={"kind": "approve"},
                headers={"Idempotency-Key": "c1"}, params={"wait": 60},
            )  # fmt: skip
            assert approved.json()["status"] == "accepted", approved.text

            async def completed() -> bool:
                run = (await alice.get(f"/api/runs/{run_id}")).json()
                return bool(run["status"] == "completed")

            await eventually(completed, timeout=90, interval=0.3)
    finally:
        smtp.stop()
