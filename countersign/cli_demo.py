"""`countersign demo` and `countersign dev`: the product on one machine, no servers to install.

`demo` is a guided run on the embedded default (PostgreSQL from `pgserver` for the log and
the projections), everything in this process: a projector and worker 1 start; the example
refund agent looks an order up and pauses for approval; worker 1 stops, so the run exists
only as events; the request is shown as a card and decided at the prompt (or by `--auto`);
worker 2 starts with an empty memory, rebuilds the agent by replay and finishes the run;
the timeline, the audit trail and the decision statistics come from the projections. Each
demo uses fresh topics (`demo-<hex>.*`), so it can be run again. It stops what it started:
its tasks, and the embedded PostgreSQL if it was not running before (`--keep-db` keeps it).

`dev` runs a worker and a projector in one process for local development; Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from consumers.publisher import CommandPublisher
from countersign import bootstrap, demo_view, render
from countersign.cli_processes import stop_on_signals
from countersign.logging import configure_logging
from countersign.settings import Settings
from engine.agent.app import App
from engine.agent.authorization import is_listed
from engine.errors import ConfigurationError, EngineError
from engine.log.port import EventLog, partition_for
from engine.runtime.worker import Worker, WorkerSettings
from events.approval import ApprovalRequest
from events.errors import DecodeError
from events.json import JsonObject, canonical_json
from events.notices import ApprovalRequested
from projections.insights import Insights
from projections.live import LiveStore
from projections.queries import Queries
from projections.rows import FINISHED_STATUSES, RunRow
from projections.runner import ProjectionWriter, Projector
from projections.store import ProjectionStore

T = TypeVar("T")
Body = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

DEMO_APP = "examples.refund:app"
REQUESTER = "bob"
STEP_TIMEOUT_S = 30.0


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="a guided run: an agent pauses for your decision, then resumes by replay"
    )
    demo.add_argument(
        "--auto",
        choices=["approve", "edit", "reject"],
        help="decide without asking (for scripts and CI)",
    )
    demo.add_argument("--amount", type=float, default=2400.0, help="refund asked for (>500 asks)")
    demo.add_argument("--as", dest="approver", default=None, help="who decides")
    demo.add_argument(
        "--keep-db", action="store_true", help="leave the embedded PostgreSQL running"
    )
    demo.add_argument("--verbose", action="store_true", help="show the engine's logs")
    demo.set_defaults(handler=run_demo)
    dev = commands.add_parser(
        "dev", help="worker + projector in one process (embedded default); Ctrl-C stops both"
    )
    dev.add_argument("--app", required=True, help="module:attribute of an App")
    dev.set_defaults(handler=run_dev)


# -- countersign dev --------------------------------------------------------------------------


async def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    app = bootstrap.load_app(args.app)
    url = await bootstrap.database_url(settings)
    event_log = await bootstrap.open_log(settings, client_id="countersign-dev")
    # The home schema's live copy, as `countersign projector` writes it (follows a rebuild).
    store = await LiveStore.connect(url, home=settings.projection_schema)
    stop = stop_on_signals()
    try:
        print(f"countersign dev: {_where(settings)}; topics {settings.topic_prefix}.*")
        worker = _worker(app, event_log, settings, settings.worker_group)
        projector = _projector(event_log, store, settings)
        await projector.check_log()  # projections of another log: refused before anything runs
        print(f"worker ({args.app}) and projector running; Ctrl-C stops both", flush=True)
        async with asyncio.TaskGroup() as group:  # one failing stops the other
            group.create_task(worker.run(stop))
            group.create_task(projector.run(stop))
    finally:
        await store.close()
        await event_log.close()
    return 0


# -- countersign demo -------------------------------------------------------------------------


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not args.verbose:
        configure_logging(settings.log_format, "warning")
    prefix = f"demo-{uuid.uuid4().hex[:8]}"
    settings = replace(
        settings,
        log_backend=settings.log_backend or "postgres",
        topic_prefix=prefix,
        worker_group=f"{prefix}.workers",
        projector_group=f"{prefix}.projector",
    )
    running = (settings.pg_dir / "postmaster.pid").exists()
    db_started_here = not settings.database_url and not running
    try:
        async with _Demo(settings, args) as demo:
            await demo.play()
    finally:
        if db_started_here and not args.keep_db:
            from countersign import local_pg

            await asyncio.to_thread(local_pg.stop_embedded, settings.pg_dir.resolve())
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s. Next: `countersign dev "
          f"--app {DEMO_APP}` runs a worker and a projector for your own runs.")  # fmt: skip
    return 0


class _Service:
    """A worker or projector running as a task of this process, with its own stop event."""

    def __init__(self, name: str, body: Body) -> None:
        self.name = name
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] = asyncio.create_task(body(self.stop), name=name)

    async def close(self) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 15.0)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        except Exception as error:  # reported, not raised: we are cleaning up
            print(f"countersign: {self.name} failed: {error!r}", file=sys.stderr)


class _Demo:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.app: App = bootstrap.load_app(DEMO_APP)
        self.topics = bootstrap.topics(settings)
        self.codec = bootstrap.codec(settings)
        self.services: list[_Service] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> _Demo:
        url = await bootstrap.database_url(self.settings)
        self.log: EventLog = await bootstrap.open_log(self.settings, client_id="countersign-demo")
        self._stack.push_async_callback(self.log.close)
        self.store = await ProjectionStore.connect(url)
        self._stack.push_async_callback(self.store.close)
        await self.store.migrate()
        self.queries = Queries(self.store, self.codec)
        self.publisher = CommandPublisher(self.log, self.topics, self.codec)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for service in reversed(self.services):
            await service.close()
        await self._stack.aclose()

    def start(self, name: str, body: Body) -> _Service:
        service = _Service(name, body)
        self.services.append(service)
        return service

    async def watch(self, step: Awaitable[T], what: str) -> T:
        """`step`, unless a service dies or STEP_TIMEOUT_S passes first."""
        task = asyncio.ensure_future(step)
        running = [s for s in self.services if not s.task.done()]
        watched: set[asyncio.Future[Any]] = {task, *(s.task for s in running)}
        done, _ = await asyncio.wait(
            watched, timeout=STEP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        for service in running:
            if service.task in done:
                failure = None if service.task.cancelled() else service.task.exception()
                raise EngineError(f"the {service.name} stopped while {what}: {failure!r}")
        raise TimeoutError(f"{what} took more than {STEP_TIMEOUT_S:.0f}s")

    async def play(self) -> None:
        print("Countersign demo: an agent run stops for a person, then resumes by replay")
        print(f"event log    {_where(self.settings)}; topics {self.topics.prefix}.*")
        self.start("projector", _projector(self.log, self.store, self.settings).run)
        first = self.start("worker 1", self._worker_body())
        print("started      a projector and worker 1 (tasks of this process)\n")
        run_id, notice = await self.paused_run()
        await first.close()
        print("[2] Worker 1 stops. Nothing holds the agent in memory any more: the paused")
        print("    run exists only as its events in the log.\n")
        print(demo_view.card(notice, time.time_ns() // 1000))
        before = Counter(tool for tool, _ in _effects())
        await self.decide(run_id, notice)
        run = await self.watch(self.finished(run_id), "waiting for the run to finish")
        after = Counter(tool for tool, _ in _effects())
        await self.show_replay(run, before, after)
        await self.show_audit(run_id)

    def _worker_body(self) -> Body:
        worker = _worker(self.app, self.log, self.settings, self.settings.worker_group)
        return worker.run

    async def paused_run(self) -> tuple[str, ApprovalRequested]:
        amount = float(self.args.amount)
        order: JsonObject = {
            "order_id": "A-17",
            "amount": int(amount) if amount.is_integer() else amount,
        }
        run_id = await self.publisher.start_run("refund", order, requested_by=REQUESTER)
        print(f"[1] {REQUESTER} asks the refund agent to refund order A-17: "
              f"{self.args.amount:,.2f} (run {run_id})")  # fmt: skip
        notice = await self.watch(self.approval_request(run_id), "waiting for the interrupt")
        print("    Worker 1 looked the order up (tool lookup_order), then reached the refund,")
        print("    which needs a person above 500: it raised an interrupt and the run paused.\n")
        return run_id, notice

    async def approval_request(self, run_id: str) -> ApprovalRequested:
        count = await self.log.partition_count(self.topics.approvals)
        partition = partition_for(run_id, count)
        stream = self.log.read(self.topics.approvals, partition, 0, follow=True)
        try:
            async for record in stream:
                try:
                    notice = self.codec.decode_notice(record.value)
                except DecodeError:
                    continue
                if isinstance(notice, ApprovalRequested) and notice.run_id == run_id:
                    return notice
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        raise EngineError("the approvals topic ended")  # pragma: no cover - follow never ends

    async def decide(self, run_id: str, notice: ApprovalRequested) -> None:
        request = notice.request
        kind, reason, edited = await _ask(request, self.args.auto)
        who = self.args.approver or _approver(self.app, request, notice.requested_by)
        how = " (--auto)" if self.args.auto else ""
        change = f" to {canonical_json(edited)}" if edited else ""
        print(f"\n[3] {who} decides: {kind}{change}, reason {reason!r}{how}")
        self.start("worker 2", self._worker_body())
        print("    Worker 2 starts (a new worker, empty memory) and receives the decision.")
        position = await self.publisher.outcome_position(run_id)
        decision_id = await self.publisher.submit_decision(
            run_id,
            notice.interrupt_id,
            kind,
            decided_by=who,
            reason=reason,
            edited_args=edited,
            digest=request.digest,
        )
        outcome = await self.watch(
            self.publisher.wait_for_outcome(decision_id, position, STEP_TIMEOUT_S),
            "waiting for the decision's outcome",
        )
        verdict = "accepted" if outcome.accepted else f"REFUSED: {outcome.reason}"
        print(f"    Decision {verdict}.\n")

    async def finished(self, run_id: str) -> RunRow:
        while True:
            run = await self.queries.get_run(run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                return run
            await asyncio.sleep(0.05)

    async def show_replay(self, run: RunRow, before: Counter[str], after: Counter[str]) -> None:
        timeline = await self.queries.run_timeline(run.run_id)
        print("[4] The run resumed by replay on worker 2 and finished: " + run.status)
        print(textwrap.indent(demo_view.replay_summary(timeline, before, after), "    "))
        print(demo_view.rule("timeline (from the projections)"))
        print(render.timeline(timeline))
        print(demo_view.rule())
        print(render.run_header(run) + "\n")

    async def show_audit(self, run_id: str) -> None:
        print("[5] Audit trail of this run")
        print(render.audit(await self.queries.audit(run_id=run_id)))
        stats = await Insights(self.store).stats("tool")
        print("\n[6] Decision statistics per tool, over every run in this database")
        print(demo_view.stats_table(stats))


async def _ask(request: ApprovalRequest, auto: str | None) -> tuple[str, str, JsonObject | None]:
    """The decision: from `--auto`, else from the prompt. Returns kind, reason, edited args."""
    interactive = auto is None
    kind = auto or ""
    choices = [k for k in request.allowed if k in ("approve", "edit", "reject")]
    while kind not in choices:
        answer = (await _read_line(f"Your decision [{'/'.join(choices)}]: ")).lower()
        kind = next((k for k in choices if answer and k.startswith(answer)), "")
    if kind == "edit":
        args = dict(request.args or {})
        amount = float(args.get("amount", 0) or 0) / 2  # type: ignore[arg-type]
        if interactive:
            typed = await _read_line(f"New amount [{amount:g}]: ")
            amount = float(typed) if typed else amount
        args["amount"] = amount
        return kind, "partial refund: half now, the rest after the return arrives", args
    if kind == "reject":
        reason = "the order is outside the refund window"
        if interactive:
            reason = await _read_line(f"Reason, sent back to the agent [{reason}]: ") or reason
        return kind, reason, None
    return kind, "checked the order and the payment", None


async def _read_line(prompt: str) -> str:
    """A line from stdin without blocking the event loop (the services keep running)."""
    print(prompt, end="", flush=True)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def ready() -> None:
        if not answer.done():
            answer.set_result(sys.stdin.readline())

    try:
        loop.add_reader(sys.stdin.fileno(), ready)
    except (OSError, ValueError):  # a regular file: reading it does not block anyway
        line = sys.stdin.readline()
    else:
        try:
            line = await answer
        finally:
            loop.remove_reader(sys.stdin.fileno())
    if not line:
        raise ConfigurationError("no answer on stdin: pass --auto approve|edit|reject")
    return line.strip()


def _approver(app: App, request: ApprovalRequest, requester: str) -> str:
    """Someone the request allows: from the app's directory, never the requester."""
    for principal in app.directory:
        if principal != requester and is_listed(principal, request.approvers, app.directory):
            return principal
    named = [a for a in request.approvers if not a.startswith("role:") and a != requester]
    return named[0] if named else "alice"


def _effects() -> list[tuple[str, str]]:
    """The example's tools record each real execution (tool, idempotency key)."""
    from examples import refund

    return list(refund.EFFECTS)


def _worker(app: App, event_log: EventLog, settings: Settings, group: str) -> Worker:
    return Worker(
        app,
        event_log,
        bootstrap.topics(settings),
        bootstrap.codec(settings),
        settings=WorkerSettings(group=group),
    )


def _projector(event_log: EventLog, store: ProjectionWriter, settings: Settings) -> Projector:
    return Projector(
        event_log,
        store,
        bootstrap.topics(settings).runs,
        group=settings.projector_group,
        codec=bootstrap.codec(settings),
    )


def _where(settings: Settings) -> str:
    backend = bootstrap.backend(settings)
    if backend == "postgres":
        where = "a configured database" if settings.database_url else f"embedded, {settings.pg_dir}"
        return f"PostgreSQL ({where})"
    return "Kafka" if backend == "kafka" else "in memory (this process only)"
