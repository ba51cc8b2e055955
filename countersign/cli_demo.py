"""`countersign demo` and `countersign dev`: the product on one machine, no servers to install.

`demo` is a guided run on the embedded default (PostgreSQL from `pgserver` for the log and
the projections), everything in this process: a projector and worker 1 start; the example
refund agent looks an order up and pauses for approval; worker 1 stops, so the run exists
only as events; the request is shown as a card and decided at the prompt (or by `--auto`);
worker 2 starts with an empty memory, rebuilds the agent by replay and finishes the run;
the timeline, the audit trail and the decision statistics come from the projections.

Each demo uses fresh topics (`demo-<hex>.*`), so it can be run again, and keeps its
projections in a schema of its own (`countersign_demo`), apart from a deployment's: the runs
of a `countersign worker` on the same database never mix with the demo's. A demo stopped
before its run finished (Ctrl-C, no answer on stdin) cancels the run, so no request stays
open. It stops what it started: its tasks, and the embedded PostgreSQL if it was not running
before (`--keep-db` keeps it).

`dev` runs a worker and a projector in one process for local development; Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from countersign import bootstrap, demo_view, render
from countersign.cli_options import json_logs
from countersign.cli_processes import probe_options, stop_on_signals
from countersign.health_server import AllOf
from countersign.logging import configure_logging
from countersign.observed import observed
from countersign.settings import Settings
from engine.errors import ConfigurationError, EngineError
from events.approval import ApprovalRequest
from events.json import JsonObject, canonical_json
from events.notices import ApprovalRequested
from projections.insights import Insights
from projections.queries import Queries
from projections.rows import FINISHED_STATUSES, RunRow

T = TypeVar("T")
Body = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

DEMO_APP = "examples.refund:app"
DEMO_EFFECTS = "examples.refund:EFFECTS"
"""The example's tools append (tool, idempotency key) here on every real execution."""
DEMO_SCHEMA = "countersign_demo"
APPROVAL_LIMIT = 500.0
"""The example's `refund-limit`: above it a person decides."""
REQUESTER = "bob"
STEP_TIMEOUT_S = 30.0
CANCEL_TIMEOUT_S = 15.0

log = structlog.get_logger(__name__)


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
    demo.add_argument(
        "--json", action="store_true", help="print only a JSON summary (prompts go to stderr)"
    )
    demo.set_defaults(handler=run_demo)
    dev = commands.add_parser(
        "dev", help="worker + projector in one process (embedded default); Ctrl-C stops both"
    )
    dev.add_argument(
        "--app",
        required=True,
        action="append",
        help="module:attribute of an App (repeat to serve several)",
    )
    dev.add_argument("--web-port", type=int, default=None,
                     help="the web inbox's port (default 8766; 0: any free one)")  # fmt: skip
    dev.add_argument("--no-web", action="store_true", help="no web inbox")
    dev.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="DEVELOPMENT ONLY: accept unsigned commands too (the CLI signs with the "
        "development issuer `dev` makes)",
    )
    json_logs(dev)
    probe_options(dev)
    dev.set_defaults(handler=run_dev)


# -- countersign dev --------------------------------------------------------------------------


async def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    if args.json:
        configure_logging("json", settings.log_level)
    app = bootstrap.load_apps(args.app)
    log.info("dev_serving", app=", ".join(args.app), schema=settings.projection_schema,
             **bootstrap.serving(settings))  # fmt: skip
    stop = stop_on_signals()
    async with (
        observed(args.health_host, args.health_port, "worker", "projector", service="dev") as seen,
        bootstrap.connected(
            settings, client_id="countersign-dev", keep_database=True, keys=True
        ) as runtime,
        bootstrap.database(settings, keep_running=True) as url,
        bootstrap.projection_writer(settings, url) as store,
    ):
        # Every resume replays the run from its history first: a non-deterministic agent is
        # parked (with why) at its first decision, not after some later restart.
        # A local development issuer: `countersign start/decide/cancel` sign with its key.
        trust = await bootstrap.trust(
            settings, allow_unsigned=args.allow_unsigned, development=True
        )
        worker = runtime.worker(app, check_determinism=True, trust=trust, telemetry=seen.telemetry)
        projector = runtime.projector(store, metrics=seen.metrics)
        seen.probes.watched = AllOf(worker=worker.watch, projector=projector.watch)
        await projector.check_log()  # projections of another log: refused before anything runs
        async with contextlib.AsyncExitStack() as web:
            if not args.no_web:
                web_url = await web.enter_async_context(dev_web(settings, args, runtime, app))
                print(f"web inbox: {web_url}/", flush=True)
            served = ", ".join(args.app)
            print(f"worker ({served}) and projector running; Ctrl-C stops both", flush=True)
            async with asyncio.TaskGroup() as group:  # one failing stops the other
                group.create_task(worker.run(stop))
                group.create_task(projector.run(stop))
    return 0


def _free(host: str, port: int) -> bool:
    from countersign.web.app import listen

    try:
        listen(host, port).close()
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def dev_web(
    settings: Settings, args: argparse.Namespace, runtime: bootstrap.Runtime, app: Any
) -> AsyncIterator[str]:
    """The web inbox for `dev`: the App's people as local users (made once, passwords
    printed), commands signed by the development issuer."""
    from countersign.cli_serve import dev_users, web_settings
    from countersign.web.app import serve
    from countersign.web.signing import development_signer

    found = web_settings(settings, argparse.Namespace(host=None, port=args.web_port))
    if args.web_port is None and not _free(found.host, found.port):
        found = replace(found, port=0)  # the usual port is taken (another dev?): any free one
    directory = {name: tuple(roles) for name, roles in app.directory.items()}
    for line in dev_users(found.users_file, directory):
        print(line, flush=True)
    signer = development_signer(settings)
    async with (
        bootstrap.read_side(settings) as store,
        serve(found, runtime, store, signer=signer, directory=directory) as served,
    ):
        yield served.url


# -- countersign demo -------------------------------------------------------------------------


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.amount <= APPROVAL_LIMIT:
        raise ConfigurationError(
            f"--amount {args.amount:g}: refunds up to {APPROVAL_LIMIT:g} run without asking "
            "anyone, and this demo is about asking; give more"
        )
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
    out = _Out(quiet=args.json)
    async with (
        bootstrap.database(settings, keep_running=args.keep_db),
        _Demo(settings, args, out) as demo,
    ):
        summary = await demo.play()
    seconds = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps({**summary, "seconds": seconds}))
        return 0
    out.say(f"\ndemo finished in {seconds:.1f} s. Its runs stay in the projections schema "
            f"{DEMO_SCHEMA}, apart from yours;\nlook with --keep-db and "
            f"`COUNTERSIGN_PROJECTION_SCHEMA={DEMO_SCHEMA} countersign runs list`.\n"
            f"Next: `countersign dev --app {DEMO_APP}` runs a worker and a projector "
            "for your own runs.")  # fmt: skip
    return 0


@dataclass
class _Out:
    """The demo's narrative on stdout, or nothing of it with `--json` (prompts: stderr)."""

    quiet: bool
    summary: dict[str, object] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def prompt(self, text: str) -> None:
        print(text, end="", flush=True, file=sys.stderr if self.quiet else sys.stdout)


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
    def __init__(self, settings: Settings, args: argparse.Namespace, out: _Out) -> None:
        self.settings = settings
        self.args = args
        self.out = out
        self.app = bootstrap.load_app(DEMO_APP)
        self.effects = bootstrap.load_object(DEMO_EFFECTS)
        self.services: list[_Service] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> _Demo:
        try:
            self.runtime = await self._stack.enter_async_context(
                bootstrap.connected(self.settings, client_id="countersign-demo", keys=True)
            )
            self.store = await self._stack.enter_async_context(
                bootstrap.read_side(self.settings, schema=DEMO_SCHEMA)
            )
        except BaseException:
            await self._stack.aclose()
            raise
        self.queries = Queries(self.store, self.runtime.codec)
        # The demo signs for its people with a local development issuer, which its workers
        # trust: the same proofs any other system must give (docs/signing.md).
        self.trust = await bootstrap.trust(self.settings, development=True)
        self.publisher = self.runtime.publisher()
        self.feed = self.runtime.approvals()
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

    async def play(self) -> dict[str, object]:
        say = self.out.say
        say("Countersign demo: an agent run stops for a person, then resumes by replay")
        where = bootstrap.serving(self.settings)["log"]
        say(f"event log    {where}; topics {self.runtime.topics.prefix}.*")
        self.start("projector", self.runtime.projector(self.store).run)
        first = self.start("worker 1", self.runtime.worker(self.app, trust=self.trust).run)
        say("started      a projector and worker 1 (tasks of this process)\n")
        run_id = await self.start_run()
        try:
            return await self.finish(run_id, first)
        except BaseException:  # Ctrl-C, no answer, a failure: leave no request open
            await self.abandon(run_id)
            raise

    async def finish(self, run_id: str, first: _Service) -> dict[str, object]:
        say = self.out.say
        notice = await self.watch(
            self.feed.first_request(run_id, STEP_TIMEOUT_S), "waiting for the interrupt"
        )
        say("    Worker 1 looked the order up (tool lookup_order), then reached the refund,")
        say("    which needs a person above 500: it raised an interrupt and the run paused.\n")
        await first.close()
        say("[2] Worker 1 stops. Nothing holds the agent in memory any more: the paused")
        say("    run exists only as its events in the log.\n")
        say(demo_view.card(notice, time.time_ns() // 1000))
        before = self._executions()
        decision = await self.decide(run_id, notice)
        run = await self.watch(self.finished(run_id), "waiting for the run to finish")
        after = self._executions()
        await self.show_replay(run, before, after)
        await self.show_audit(run_id)
        tools = {
            tool: {"before": before.get(tool, 0), "after": after[tool] - before.get(tool, 0)}
            for tool in sorted(after)
        }
        return {"run_id": run_id, "prefix": self.runtime.topics.prefix, "schema": DEMO_SCHEMA,
                **decision, "status": run.status, "output": run.output, "tools": tools}  # fmt: skip

    async def start_run(self) -> str:
        amount = float(self.args.amount)
        order: JsonObject = {
            "order_id": "A-17",
            "amount": int(amount) if amount.is_integer() else amount,
        }
        run_id = await self.publisher.start_run("refund", order, requested_by=REQUESTER)
        self.out.say(f"[1] {REQUESTER} asks the refund agent to refund order A-17: "
                     f"{self.args.amount:,.2f} (run {run_id})")  # fmt: skip
        return run_id

    async def decide(self, run_id: str, notice: ApprovalRequested) -> dict[str, object]:
        request = notice.request
        kind, reason, edited = await _ask(request, self.args.auto, self.out)
        who = self.args.approver or demo_view.approver(
            self.app.directory, request, notice.requested_by
        )
        how = " (--auto)" if self.args.auto else ""
        change = f" to {canonical_json(edited)}" if edited else ""
        self.out.say(f"\n[3] {who} decides: {kind}{change}, reason {reason!r}{how}")
        self.start("worker 2", self.runtime.worker(self.app, trust=self.trust).run)
        self.out.say("    Worker 2 starts (a new worker, empty memory) and receives the decision.")
        position = await self.feed.position(run_id)
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
            self.feed.outcome(decision_id, position, STEP_TIMEOUT_S),
            "waiting for the decision's outcome",
        )
        verdict = "accepted" if outcome.accepted else f"REFUSED: {outcome.reason}"
        self.out.say(f"    Decision {verdict}.\n")
        return {"decision": {"kind": kind, "by": who, "reason": reason, "edited_args": edited,
                             "accepted": outcome.accepted, "outcome": outcome.reason}}  # fmt: skip

    async def finished(self, run_id: str) -> RunRow:
        while True:
            run = await self.queries.get_run(run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                return run
            await asyncio.sleep(0.05)

    async def abandon(self, run_id: str) -> None:
        """Cancel the demo's run if it has not finished, so that its request does not wait in
        the inbox forever; a worker is started to apply the cancel if none is running."""
        run = await self.queries.get_run(run_id)
        if run is not None and run.status in FINISHED_STATUSES:
            return
        await self.publisher.cancel_run(  # for its requester: a run's own requester may cancel it
            run_id, cancelled_by=REQUESTER, reason="the demo was stopped before the run finished"
        )
        if not any(s.name.startswith("worker") and not s.task.done() for s in self.services):
            self.start("worker (cancel)", self.runtime.worker(self.app, trust=self.trust).run)
        try:
            await asyncio.wait_for(self.finished(run_id), CANCEL_TIMEOUT_S)
        except TimeoutError:
            print(f"countersign: the demo's run {run_id} could not be cancelled in time; "
                  f"`countersign cancel {run_id}` with --prefix {self.runtime.topics.prefix}",
                  file=sys.stderr)  # fmt: skip
            return
        print(f"\ncountersign: demo stopped; its run {run_id} was cancelled", file=sys.stderr)

    def _executions(self) -> Counter[str]:
        effects = self.effects
        assert isinstance(effects, list)
        return Counter(tool for tool, _ in effects)

    async def show_replay(self, run: RunRow, before: Counter[str], after: Counter[str]) -> None:
        say = self.out.say
        timeline = await self.queries.run_timeline(run.run_id)
        say("[4] The run resumed by replay on worker 2 and finished: " + run.status)
        say(textwrap.indent(demo_view.replay_summary(timeline, before, after), "    "))
        say(demo_view.rule("timeline (from the projections)"))
        say(render.timeline(timeline))
        say(demo_view.rule())
        say(render.run_header(run) + "\n")

    async def show_audit(self, run_id: str) -> None:
        say = self.out.say
        say("[5] Audit trail of this run")
        say(render.audit(await self.queries.audit(run_id=run_id)))
        stats = await Insights(self.store).stats("tool")
        say("\n[6] Decision statistics per tool, over every demo run in this database")
        say(demo_view.stats_table(stats))


async def _ask(
    request: ApprovalRequest, auto: str | None, out: _Out
) -> tuple[str, str, JsonObject | None]:
    """The decision: from `--auto`, else from the prompt. Returns kind, reason, edited args."""
    interactive = auto is None
    kind = auto or ""
    choices = [k for k in request.allowed if k in ("approve", "edit", "reject")]
    while kind not in choices:
        answer = (await _read_line(f"Your decision [{'/'.join(choices)}]: ", out)).lower()
        kind = next((k for k in choices if answer and k.startswith(answer)), "")
    if kind == "edit":
        args = dict(request.args or {})
        amount = float(args.get("amount", 0) or 0) / 2  # type: ignore[arg-type]
        if interactive:
            typed = await _read_line(f"New amount [{amount:g}]: ", out)
            amount = float(typed) if typed else amount
        args["amount"] = amount
        return kind, "partial refund: half now, the rest after the return arrives", args
    if kind == "reject":
        reason = "the order is outside the refund window"
        if interactive:
            reason = await _read_line(f"Reason, sent back to the agent [{reason}]: ", out) or reason
        return kind, reason, None
    return kind, "checked the order and the payment", None


async def _read_line(prompt: str, out: _Out) -> str:
    """A line from stdin without blocking the event loop (the services keep running)."""
    out.prompt(prompt)
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
