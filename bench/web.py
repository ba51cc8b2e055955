"""The web inbox and the notifier: decision round trip, inbox page load, notifications/s.

    .venv/bin/python bench/web.py [--decisions 100] [--open 10000] [--notices 500]

Starts what it needs in a temporary directory (a local Kafka broker unless
COUNTERSIGN_KAFKA_BOOTSTRAP is set, an embedded PostgreSQL) and prints:
- API decision round trip on the local broker: POST .../decision?wait=30 until the outcome
  (accepted) comes back, one decision at a time, p50 / p99 over `--decisions` requests
  (worker, projector and web server in this process, as `countersign dev` runs them);
- the inbox page (GET /, 100 cards, SLA counts) and GET /api/inbox with `--open` open
  requests in the projections: server time (the Server-Timing header) p50 / p99, and the
  whole request as the client sees it;
- notifications per second: `--notices` approval requests on the approvals topic, each to a
  webhook and to e-mail (a local receiver and a local aiosmtpd), through the ledger in
  PostgreSQL, counted from the first record read to the last message acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from consumers.notifier import Notifier, NotifierSettings  # noqa: E402
from consumers.notify_channels import Senders, SmtpSettings  # noqa: E402
from consumers.notify_plan import Routing  # noqa: E402
from consumers.notify_store import PostgresLedger  # noqa: E402
from countersign import bootstrap, local_kafka, local_pg  # noqa: E402
from countersign.logging import configure_logging  # noqa: E402
from countersign.settings import Settings  # noqa: E402
from countersign.web.app import serve  # noqa: E402
from countersign.web.config import WebSettings  # noqa: E402
from countersign.web.signing import development_signer  # noqa: E402
from countersign.web.users import Users, with_user, write_users  # noqa: E402
from engine.log.port import Outgoing  # noqa: E402
from events.approval import ApprovalRequest  # noqa: E402
from events.notices import ApprovalRequested  # noqa: E402
from examples.refund import app as refund_app  # noqa: E402

PASSWORD = "bench password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def settings(home: Path, pg: str, kafka: str | None, prefix: str) -> Settings:
    return Settings(
        home=home, log_backend="kafka" if kafka else "memory", kafka_bootstrap=kafka,
        database_url=pg, topic_prefix=prefix, worker_group=f"{prefix}.w",
        projector_group=f"{prefix}.p", projection_schema=prefix, log_level="warning",
    )  # fmt: skip


async def logged_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=60)
    form = (await client.get("/login")).text
    token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    await client.post("/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    client.headers["X-CSRF-Token"] = (await client.get("/api/me")).json()["csrf_token"]
    return client


@contextlib.asynccontextmanager
async def web(cfg: Settings, *, worker: bool) -> AsyncIterator[str]:
    users = cfg.home / "users.json"
    write_users(users, with_user(Users(), "alice", PASSWORD, ["support-lead"]))
    stop = asyncio.Event()
    async with (
        bootstrap.connected(cfg, client_id="bench-web") as runtime,
        bootstrap.projection_writer(cfg, cfg.database_url or "") as writer,
    ):
        tasks = []
        if worker:
            serving = runtime.worker(refund_app, **await worker_trust(cfg))
            tasks = [asyncio.create_task(runtime.projector(writer).run(stop)),
                     asyncio.create_task(serving.run(stop))]  # fmt: skip
        async with (
            bootstrap.read_side(cfg) as store,
            serve(
                WebSettings(port=0, users_file=users), runtime, store,
                signer=development_signer(cfg),
            ) as served,
        ):  # fmt: skip
            yield served.url
        stop.set()
        await asyncio.gather(*tasks)


async def worker_trust(cfg: Settings) -> dict[str, object]:
    """As `countersign dev` runs it: the worker trusts the development issuer the server and
    the publisher sign with (on Kafka it refuses unsigned commands)."""
    return {"trust": await bootstrap.trust(cfg, development=True)}


async def round_trips(cfg: Settings, count: int) -> None:
    async with web(cfg, worker=True) as url:
        client = await logged_in(url)
        async with bootstrap.connected(cfg, client_id="bench-start") as runtime:
            runs = [await runtime.publisher().start_run(
                "refund", {"order_id": f"B-{i}", "amount": 900}, requested_by="bob")
                for i in range(count)]  # fmt: skip
        wanted = set(runs)
        items: dict[str, dict[str, object]] = {}
        while len(items) < count:
            listed = (await client.get("/api/inbox", params={"limit": 10000})).json()["items"]
            items = {i["run_id"]: i for i in listed if i["run_id"] in wanted}
            await asyncio.sleep(0.2)
        took = []
        for run_id in runs:
            item = items[run_id]
            path = f"/api/runs/{run_id}/requests/{item['interrupt_id']}/decision"
            started = time.perf_counter()
            answer = await client.post(path, json={"kind": "approve"}, params={"wait": 30},
                                       headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
            took.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text
        await client.aclose()
    print(f"API decision round trip (POST -> outcome, local broker), {count} decisions: "
          f"p50 {pct(took, 0.5):.1f} ms, p99 {pct(took, 0.99):.1f} ms")  # fmt: skip


async def fill_inbox(cfg: Settings, count: int) -> None:
    from projections.store import ProjectionStore

    store = await ProjectionStore.connect(cfg.database_url or "", schema=cfg.projection_schema)
    await store.migrate()
    await store._db.execute(  # a bench's shortcut: rows as the projector writes them
        "INSERT INTO cs_interrupts (interrupt_id, run_id, seq, call, kind, title, tool, args,"
        " risk, amount, policy, approvers, allowed, deadline, on_timeout, level, quorum, votes,"
        " status, raised_at, agent, requested_by) SELECT 'i-' || n, 'r-' || n, 3, 1, 'tool',"
        " 'refund(order_id=\"A-' || n || '\", amount=' || (500 + n) || ')', 'refund',"
        " jsonb_build_object('order_id', 'A-' || n, 'amount', 500 + n), 'high', 500 + n,"
        ' \'refund-limit@1\', \'["role:support-lead"]\', \'["approve", "edit", "reject"]\','
        " now() + (n % 500) * interval '1 minute' - interval '30 minutes', 'reject', 1, 1, 0,"
        " 'open', now() - interval '1 hour', 'refund', 'bob' FROM generate_series(1, $1) n",
        count,
    )
    await store.close()


async def page_load(cfg: Settings, count: int, tries: int = 30) -> None:
    await fill_inbox(cfg, count)
    async with web(cfg, worker=False) as url:
        client = await logged_in(url)
        for path, params in (("/", {}), ("/api/inbox", {"limit": "100"}),
                             ("/", {"mine": "1", "sla": "due_soon"})):  # fmt: skip
            server, whole = [], []
            for _ in range(tries):
                started = time.perf_counter()
                answer = await client.get(path, params=params)
                whole.append((time.perf_counter() - started) * 1000)
                server.append(float(answer.headers["server-timing"].split("dur=")[1]))
                assert answer.status_code == 200
            shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
            print(f"{shown} with {count} open requests: server p50 {pct(server, 0.5):.1f} ms, "
                  f"p99 {pct(server, 0.99):.1f} ms; whole request p50 {pct(whole, 0.5):.1f} ms "
                  f"({len(answer.content) // 1024} KiB)")  # fmt: skip
        await client.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def notifications(cfg: Settings, count: int) -> None:
    received: list[float] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def heard() -> None:
        received.append(time.perf_counter())
        if len(received) >= 2 * count:
            loop.call_soon_threadsafe(done.set)  # aiosmtpd answers from its own thread

    async def hook(request: Request) -> Response:
        await request.body()
        heard()
        return Response("ok")

    class Mail:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            heard()
            return "250 OK"

    port, smtp_port = free_port(), free_port()
    controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    receiver = uvicorn.Server(uvicorn.Config(
        Starlette(routes=[Route("/h", hook, methods=["POST"])]), host="127.0.0.1", port=port,
        log_config=None, access_log=False, lifespan="off"))  # fmt: skip
    serving = asyncio.create_task(receiver.serve())
    routing = Routing.parse({"channels": {
        "ops": {"type": "webhook", "url": f"http://127.0.0.1:{port}/h"},
        "leads": {"type": "email", "to": ["leads@example.com"]}},
        "routes": [{"channels": ["ops", "leads"]}]})  # fmt: skip
    ledger = await PostgresLedger.connect(cfg.database_url or "", schema=f"{cfg.topic_prefix}_n")
    senders = Senders(SmtpSettings(port=smtp_port))
    async with bootstrap.connected(cfg, client_id="bench-notify") as runtime:
        deadline = int((time.time() + 86_400) * 1e6)
        records = [Outgoing(runtime.topics.approvals, f"r-{n}", runtime.codec.encode(
            ApprovalRequested(run_id=f"r-{n}", interrupt_id=f"i-{n}", agent="refund",
                              agent_version="1", requested_by="bob",
                              requested_at_us=int(time.time() * 1e6),
                              request=ApprovalRequest(kind="tool", title=f"refund {n}",
                                                      risk="high", deadline_us=deadline))))
            for n in range(count)]  # fmt: skip
        await runtime.log.publish(records)
        notifier = Notifier(runtime.log, runtime.topics, runtime.codec, ledger, routing, senders,
                            NotifierSettings(base_url="http://127.0.0.1", idle_s=0.02,
                                             group=f"{cfg.topic_prefix}.n"))  # fmt: skip
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(notifier.run(stop))
        await asyncio.wait_for(done.wait(), 600)
        seconds = received[-1] - started
        stop.set()
        await task
    await senders.close()
    await ledger.close()
    receiver.should_exit = True
    await serving
    controller.stop()
    steady = received[-1] - received[0]
    print(f"notifications: {2 * count} ({count} webhook + {count} e-mail) in {seconds:.2f} s "
          f"from the notifier's start (group join included): {2 * count / seconds:.0f}/s; "
          f"first to last message: {2 * count / steady:.0f}/s")  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    configure_logging("console", "warning")
    root = Path(tempfile.mkdtemp(prefix="bench-web-"))
    kafka = None
    pg = await asyncio.to_thread(local_pg.start_embedded, root / "pg", stop_at_exit=True)
    try:
        kafka = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
        if kafka is None and args.decisions:
            kafka = (await asyncio.to_thread(local_kafka.start, root / "kafka")).bootstrap
        prefix = f"bw{uuid.uuid4().hex[:6]}"
        base = settings(root, pg, kafka, prefix)
        if args.decisions:
            await round_trips(base, args.decisions)
        if args.open:
            await page_load(replace(base, log_backend="memory", projection_schema=f"{prefix}_i"),
                            args.open)  # fmt: skip
        if args.notices:
            await notifications(replace(base, topic_prefix=f"{prefix}n"), args.notices)
    finally:
        if kafka and "COUNTERSIGN_KAFKA_BOOTSTRAP" not in os.environ:
            await asyncio.to_thread(local_kafka.stop, root / "kafka")
        await asyncio.to_thread(local_pg.stop_embedded, root / "pg")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--notices", type=int, default=500)
    asyncio.run(main(parser.parse_args()))
