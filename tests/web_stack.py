"""The whole product in one process for the web tests: a worker, a projector and the web server
(on a free 127.0.0.1 port), on the embedded log or the local Kafka broker, with local users."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from consumers import CommandPublisher
from countersign import bootstrap
from countersign.settings import Settings
from countersign.trusting import worker_trust
from countersign.web.app import Serving, serve
from countersign.web.config import WebSettings
from countersign.web.signing import ServerSigner, development_signer
from countersign.web.users import Users, with_user, write_users
from engine.agent.app import App
from engine.log.port import Record
from tests import web_agents
from tests.helpers import eventually

PASSWORD = "correct horse battery"
USERS = {"alice": ("support-lead",), "erin": ("support-lead",), "bob": (), "dave": (),
         "carol": ("finance",)}  # fmt: skip


def settings_for(
    home: Path, prefix: str, pg_url: str, kafka_bootstrap: str | None = None
) -> Settings:
    return Settings(
        home=home,
        log_backend="kafka" if kafka_bootstrap else "postgres",
        kafka_bootstrap=kafka_bootstrap,
        database_url=pg_url,
        topic_prefix=prefix,
        worker_group=f"{prefix}.workers",
        projector_group=f"{prefix}.projector",
        projection_schema=prefix,
        log_format="json",
    )


@dataclass
class Stack:
    settings: Settings
    served: Serving
    publisher: CommandPublisher
    runtime: bootstrap.Runtime

    @property
    def url(self) -> str:
        return self.served.url

    async def start(self, agent: str, payload: dict[str, object], by: str = "bob") -> str:
        return await self.publisher.start_run(agent, payload, requested_by=by)  # type: ignore[arg-type]

    async def open_request(self, run_id: str, within_s: float = 60) -> dict[str, object]:
        """The run's open request as the API lists it (once projected)."""
        async with self.client("alice") as client:

            async def listed() -> dict[str, object] | None:
                items = (await client.get("/api/inbox", params={"limit": 1000})).json()["items"]
                return next((i for i in items if i["run_id"] == run_id), None)

            found: dict[str, object] = await eventually(listed, timeout=within_s, interval=0.2)
            return found

    async def commands(self, run_id: str) -> list[Record]:
        """The commands of `run_id` on the commands topic, as published."""
        log, topic = self.runtime.log, self.runtime.topics.commands
        found = []
        for partition in range(await log.partition_count(topic)):
            async for record in log.read(topic, partition, 0):
                if record.key == run_id:
                    found.append(record)
        return found

    @contextlib.asynccontextmanager
    async def client(self, user: str) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client logged in as `user` (its session cookie and CSRF header set)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await login(client, user)
            me = (await client.get("/api/me")).json()
            client.headers["X-CSRF-Token"] = me["csrf_token"]
            yield client


async def login(client: httpx.AsyncClient, user: str, password: str = PASSWORD) -> httpx.Response:
    form = await client.get("/login")
    token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return await client.post(
        "/login", data={"csrf": token, "username": user, "password": password, "next": "/"}
    )


def write_test_users(path: Path) -> None:
    users = Users()
    for name, roles in USERS.items():
        users = with_user(users, name, PASSWORD, roles)
    write_users(path, users)


async def worker_options(settings: Settings, signed: bool) -> dict[str, Any]:
    """The worker trusts the home's development issuer (the runtime's publisher signs with
    it, as under `countersign dev`) and, when `signed`, refuses unsigned commands."""
    backend = "kafka" if settings.kafka_bootstrap else "postgres"
    unsigned = "refuse" if signed else "allow"
    trust = await worker_trust(settings, backend, development=True,
                               env={"COUNTERSIGN_UNSIGNED": unsigned})  # fmt: skip
    return {"trust": trust}


@contextlib.asynccontextmanager
async def web_stack(
    settings: Settings,
    app: App,
    *,
    web: WebSettings | None = None,
    worker: bool = True,
    signed: bool = False,
) -> AsyncIterator[Stack]:
    """`signed`: the server signs with the home's development issuer and the worker requires
    proofs; else the server sends unsigned decisions, which the embedded log accepts."""
    users_file = settings.home / "web-users.json"
    if not users_file.exists():
        write_test_users(users_file)
    web = replace(web or WebSettings(port=0), users_file=users_file)
    stop = asyncio.Event()
    async with (
        bootstrap.connected(settings, client_id="web-test") as runtime,
        bootstrap.projection_writer(settings, settings.database_url or "") as writer,
    ):
        tasks = [asyncio.create_task(runtime.projector(writer).run(stop))]
        if worker:
            options = await worker_options(settings, signed)
            tasks.append(asyncio.create_task(runtime.worker(app, **options).run(stop)))
        signer = development_signer(settings) if signed else ServerSigner(None)
        try:
            async with (
                bootstrap.read_side(settings) as store,
                serve(web, runtime, store, signer=signer) as served,
            ):
                yield Stack(settings, served, runtime.publisher(), runtime)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


@contextlib.asynccontextmanager
async def fresh_stack(
    pg_url: str, homes: Any, name: str, kafka_bootstrap: str | None = None, *, signed: bool = False
) -> AsyncIterator[Stack]:
    """A stack of its own (topics, projections, home) for a test module: `homes` is pytest's
    `tmp_path_factory`."""
    prefix = f"{name[:1]}{uuid.uuid4().hex[:8]}"
    home = Path(homes.mktemp(f"{name}-home"))
    settings = settings_for(home, prefix, pg_url, kafka_bootstrap)
    async with web_stack(settings, web_agents.app, signed=signed) as running:
        yield running
