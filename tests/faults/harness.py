"""Shared machinery of the fault-injection suite: real Kafka, worker OS processes, seeded.

- `Chaos`: the seed and the counts of one scenario (COUNTERSIGN_CHAOS_SEED, _RUNS, ...);
  every scenario prints them with its figures, so a failure can be replayed with its seed.
- `Workers`: worker processes (`python -m tests.faults.worker`, the real engine worker),
  started, killed, paused, resumed and ended by their own pid only.
- `Operator`: the world outside: publishes StartRun commands and answers every interrupt as
  a person would (a question: respond; an approval gate: approve; an in-doubt tool call:
  look at the effects file after a grace period, respond "it ran" with its result if the
  effect is there, else approve a re-run). It follows the runs topic (read_committed) to
  see interrupts and ends, and times decision → accepted (resume latency).
- `verify`: reads every run back from the runs topic and checks the promises: per run,
  `seq` contiguous from 0, unique event ids and an intact hash chain; every run completed;
  every decision sent is in the log (none lost) and applied at most once, one outcome per
  interrupt; each idempotent tool's effect happened for every key it completed (re-runs
  after a crash are counted, not hidden), and a non-idempotent tool never ran twice for a
  key unless an in-doubt approval for that call is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.agent.app import App
from engine.errors import LogError
from engine.log.kafka import KafkaLog
from engine.log.port import Outgoing, Position, Topics, partition_for
from engine.log.routing import ROUTE_HEADER
from events.codec import Codec
from events.commands import Command, StartRun, SubmitDecision
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    InterruptRaised,
    RunCancelled,
    RunCompleted,
    RunFailed,
    ToolCallCompleted,
    ToolCallScheduled,
    VoteRecorded,
)
from tests.faults.worker import writer_of

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6
REQUESTER = "chaos-requester"
_NS = uuid.UUID("0b5c1d6e-3f43-4a8e-9d51-6c2c7f0e9a44")
_TERMINAL = (RunCompleted, RunFailed, RunCancelled)


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chaos:
    """One scenario's seed and counts. Short form by default; `make chaos` sets the long one
    through COUNTERSIGN_CHAOS_RUNS (and COUNTERSIGN_CHAOS_SEED to replay a failure)."""

    name: str
    seed: int
    runs: int

    @classmethod
    def from_env(cls, name: str, short_runs: int) -> Chaos:
        seed_text = os.environ.get("COUNTERSIGN_CHAOS_SEED")
        seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1, 10**9)
        scale = os.environ.get("COUNTERSIGN_CHAOS_RUNS")
        runs = max(short_runs, int(scale)) if scale else short_runs
        return cls(name, seed, runs)

    @property
    def long(self) -> bool:
        return bool(os.environ.get("COUNTERSIGN_CHAOS_RUNS"))

    def rng(self) -> random.Random:
        return random.Random(self.seed)


def report(chaos: Chaos, figures: dict[str, Any], out: Callable[[str], None]) -> None:
    """Hand the figures to `out` (the `chaos_report` fixture prints them after the run) and
    append them to $COUNTERSIGN_CHAOS_REPORT (JSON lines)."""
    line = {"scenario": chaos.name, "seed": chaos.seed, "runs": chaos.runs, **figures}
    out(f"[chaos] {json.dumps(line)}")
    path = os.environ.get("COUNTERSIGN_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")


# -- worker processes -----------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    signalled: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, count: int = 25) -> str:
        """Whether it runs and its last log lines, for a failure message."""
        state = "running" if self.alive else f"exited {self.popen.returncode}"
        text = self.log_path.read_text(errors="replace").splitlines()[-count:]
        return f"{self.name} ({state}), last lines:\n" + "\n".join(t[:300] for t in text)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for text in self.log_path.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(text))
        return out


class Workers:
    """Worker processes of one scenario; signals go to their own pids only."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[Proc] = []

    def spawn(self) -> Proc:
        name = f"worker-{len(self.procs) + 1}"
        path = self.logs / f"{name}.log"
        with path.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name, popen, path)
        self.procs.append(proc)
        return proc

    @property
    def alive(self) -> list[Proc]:
        return [proc for proc in self.procs if proc.alive]

    def signal(self, proc: Proc, signum: int) -> None:
        if proc.alive:
            proc.signalled.append(signum)
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signum)

    def kill(self, proc: Proc) -> None:
        self.signal(proc, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    async def leave(self, proc: Proc, timeout_s: float = 30.0) -> None:
        """Graceful, without blocking the loop: SIGTERM, then wait until it has left."""
        self.signal(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.popen.wait), timeout_s)
        except TimeoutError:
            self.kill(proc)

    def crashes(self) -> list[str]:
        """Workers that exited on their own (not by a signal the test sent), with reasons."""
        found = []
        for proc in self.procs:
            code = proc.popen.poll()
            if code is None or proc.signalled:
                continue
            tail = [line for line in proc.lines() if line.get("level") in ("error", "critical")]
            found.append(f"{proc.name} exited {code}: {tail[-3:]}")
        return found

    @staticmethod
    def owns_partitions(proc: Proc) -> bool:
        """Whether the worker's last word on partitions was a restore (not a revocation)."""
        for line in reversed(proc.lines()):
            if line.get("event") == "partition_restored":
                return True
            if line.get("event") == "partitions_revoked":
                return False
        return False

    def count(self, event: str) -> int:
        return sum(1 for proc in self.procs for line in proc.lines() if line.get("event") == event)

    def end_all(self) -> None:
        for proc in self.procs:
            if proc.alive:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)
                self.signal(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()


def worker_env(bootstrap: str, prefix: str, effects: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{prefix}.workers",
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
        "COUNTERSIGN_EFFECTS_FILE": str(effects),
        "COUNTERSIGN_FAULT_APP": "examples.chaos:app",
        "COUNTERSIGN_CHAOS_TOOL_MS": "30",
        "COUNTERSIGN_LOG_LEVEL": "info",
    }
    env |= extra
    return env


# -- faults -----------------------------------------------------------------------------------


async def kill_soon_after(workers: Workers, victim: Proc, event: str, limit_s: float) -> bool:
    """SIGKILL `victim` as soon as its log shows a new `event` (or after `limit_s`)."""
    before = sum(1 for line in victim.lines() if line.get("event") == event)
    deadline = time.monotonic() + limit_s
    hit = False
    while time.monotonic() < deadline and victim.alive:
        if sum(1 for line in victim.lines() if line.get("event") == event) > before:
            hit = True
            break
        await asyncio.sleep(0.005)
    workers.kill(victim)
    return hit


async def chaos_kills(
    workers: Workers, operator: Operator, rng: random.Random, budget: int
) -> dict[str, int]:
    """Every 1.5-4 s kill a random worker that owns partitions (and start a new one), until
    the runs are done: half at a random moment, half right after a tool ran."""
    kills = after_tool = 0
    while kills < budget and not operator.all_done():
        await asyncio.sleep(rng.uniform(1.5, 4.0))
        busy = [w for w in workers.alive if workers.owns_partitions(w)]
        if not busy:
            continue
        victim = rng.choice(busy)
        if rng.random() < 0.5:
            after_tool += await kill_soon_after(workers, victim, "tool_completed", 3.0)
        else:
            workers.kill(victim)
        kills += 1
        workers.spawn()
    return {"kills": kills, "kills_right_after_a_tool": after_tool}


# -- the world outside ----------------------------------------------------------------------


@dataclass
class Sent:
    run_id: str
    interrupt_id: str
    kind: str
    at: float


DecisionPlan = Callable[["Operator", EventEnvelope, InterruptRaised], Awaitable[None]]


class Operator:
    """Starts runs and answers their interrupts, following the runs topic."""

    def __init__(
        self,
        event_log: KafkaLog,
        topics: Topics,
        effects: Path,
        rng: random.Random,
        *,
        in_doubt_grace_s: float = 1.0,
    ) -> None:
        self.log = event_log
        self.topics = topics
        self.codec = Codec()
        self.effects = effects
        self.rng = rng
        self.grace_s = in_doubt_grace_s
        self.runs: list[str] = []
        self.expected = 0
        self.histories: dict[str, list[EventEnvelope]] = defaultdict(list)
        self.done: set[str] = set()
        self.sent: dict[str, Sent] = {}
        self.answered: set[str] = set()
        self.latencies: list[float] = []
        self.in_doubt: Counter[str] = Counter()
        self.changed = asyncio.Event()
        self.plan: DecisionPlan = Operator.decide_once
        self._tasks: list[asyncio.Task[None]] = []
        self.following = 0
        self.read_errors: list[str] = []
        self.workers: Workers | None = None  # their logs' tails go into a timeout's message

    async def start(self, partitions: int = PARTITIONS) -> None:
        """Follow the runs topic's first `partitions` (call again after adding some)."""
        for partition in range(self.following, partitions):
            self._tasks.append(asyncio.create_task(self._follow(partition)))
        self.following = max(self.following, partitions)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def publish(self, command: Command) -> None:
        """Until the log takes it (a client retries; the ids make repeats harmless)."""
        data = self.codec.encode(command)
        await self.publish_raw(Outgoing(self.topics.commands, command.run_id, data))

    async def publish_raw(self, record: Outgoing) -> Position:
        backoff = 0.1
        while True:
            try:
                [position] = await self.log.publish([record])
                return position
            except LogError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def start_runs(
        self, count: int, *, every_s: float = 0.0, partition: int | None = None
    ) -> list[str]:
        """Start `count` runs (whose home is `partition`, if given); their ids."""
        self.expected += count
        started = []
        for _ in range(count):
            number = len(self.runs)
            run_id = self._new_run_id(partition)
            self.runs.append(run_id)
            started.append(run_id)
            await self.publish(
                StartRun(
                    command_id=str(uuid.uuid5(_NS, f"start/{run_id}")),
                    run_id=run_id,
                    agent="chaos",
                    input={"item": number},
                    requested_by=REQUESTER,
                    issued_at_us=time.time_ns() // 1000,
                )
            )
            if every_s:
                await asyncio.sleep(every_s)
        return started

    def _new_run_id(self, partition: int | None) -> str:
        while True:
            run_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            if partition is None or partition_for(run_id, PARTITIONS) == partition:
                return run_id

    async def decide(
        self,
        raised: EventEnvelope,
        interrupt: InterruptRaised,
        kind: str,
        *,
        by: str = "operator",
        response: Any = None,
        decision_id: str | None = None,
    ) -> str:
        decision_id = decision_id or str(uuid.uuid5(_NS, f"{interrupt.interrupt_id}/{kind}"))
        self.sent.setdefault(
            decision_id, Sent(raised.run_id, interrupt.interrupt_id, kind, time.monotonic())
        )
        await self.publish(
            SubmitDecision(
                decision_id=decision_id,
                run_id=raised.run_id,
                interrupt_id=interrupt.interrupt_id,
                kind=kind,
                decided_by=by,
                issued_at_us=time.time_ns() // 1000,
                response=response,
                digest=interrupt.request.digest,
            )
        )
        return decision_id

    @staticmethod
    async def decide_once(op: Operator, raised: EventEnvelope, interrupt: InterruptRaised) -> None:
        """A person: answers a question, approves a gate, settles an in-doubt call."""
        request = interrupt.request
        if request.kind == "question":
            await op.decide(raised, interrupt, "respond", response=3)
        elif request.kind == "tool":
            await op.decide(raised, interrupt, "approve", by="approver")
        else:
            await op.settle_in_doubt(raised, interrupt)

    async def settle_in_doubt(self, raised: EventEnvelope, interrupt: InterruptRaised) -> None:
        """Looks at the world (the effects file) once the tool had time to finish."""
        await asyncio.sleep(self.grace_s)
        key = f"{raised.run_id}:{interrupt.call}"
        ran = [e for e in read_effects(self.effects) if e["key"] == key]
        if ran:
            self.in_doubt["respond"] += 1
            result = {"tool": ran[0]["tool"], "key": key, "pid": ran[0]["pid"]}
            await self.decide(raised, interrupt, "respond", by="operator", response=result)
        else:
            self.in_doubt["approve"] += 1
            await self.decide(raised, interrupt, "approve", by="operator")

    async def _follow(self, partition: int) -> None:
        """Every event of the partition once, across broker faults: a reader that loses its
        broker starts again after the last event it saw, as a client would."""
        position = 0
        while True:
            try:
                records = self.log.read(self.topics.runs, partition, position, follow=True)
                async for record in records:
                    position = record.offset + 1
                    envelope = self.codec.decode_event(record.value)
                    self.histories[envelope.run_id].append(envelope)
                    self._observe(envelope)
                    self.changed.set()
            except LogError as error:
                self.read_errors.append(f"runs[{partition}]@{position}: {error!r}")
                await asyncio.sleep(0.5)

    def _observe(self, envelope: EventEnvelope) -> None:
        payload = envelope.payload
        if isinstance(payload, InterruptRaised) and payload.interrupt_id not in self.answered:
            self.answered.add(payload.interrupt_id)
            if payload.request.kind == "in_doubt":
                self.in_doubt["raised"] += 1
            task = asyncio.create_task(self.plan(self, envelope, payload))
            self._tasks.append(task)
        elif isinstance(payload, DecisionAccepted):
            sent = self.sent.get(payload.decision_id)
            if sent is not None:
                self.latencies.append(time.monotonic() - sent.at)
        elif isinstance(payload, _TERMINAL):
            self.done.add(envelope.run_id)

    async def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            for task in self._tasks:  # a failed reader or decider would only look like a stall
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise AssertionError(f"{what}: an operator task failed") from task.exception()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._dump_workers()
                stable = await self._unstable_partitions()
                raise AssertionError(
                    f"not within {timeout_s:.0f}s: {what}\n{self.stalled()}\n{stable}"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))

    async def _dump_workers(self) -> None:
        """Have every live worker write its tasks' stacks and its partitions' state to its
        log (tests/faults/worker.py, on SIGUSR1), for the stall's diagnosis."""
        if self.workers is None:
            return
        for proc in self.workers.alive:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)

    async def _unstable_partitions(self) -> str:
        """Partitions whose last stable offset is behind their high watermark: a transaction
        left open there hides everything after it from read_committed readers."""
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: TID251  (the uncommitted end)

        topics = (self.topics.commands, self.topics.runs, self.topics.checkpoints)
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends, bootstrap = [], self.log.bootstrap
        for isolation in ("read_committed", "read_uncommitted"):
            reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
            try:
                async with asyncio.timeout(20):
                    await reader.start()
                    ends.append(await reader.end_offsets(tps))
            except Exception as error:  # a diagnosis only (a broker may be down)
                return f"stable offsets not read: {error!r}"
            finally:
                await reader.stop()
        stable, high = ends
        unstable = [
            f"  {tp.topic}[{tp.partition}] lso {stable[tp]} hw {high[tp]}"
            for tp in tps
            if stable[tp] != high[tp]
        ]
        return "partitions not stable:\n" + ("\n".join(unstable) or "  none")

    def stalled(self) -> str:
        """Where the runs not yet ended stand, and the reads that failed, for a timeout."""
        pending = [run for run in self.runs if run not in self.done]
        lines = [f"{len(pending)} of {len(self.runs)} runs started not ended"]
        for run in pending[:10]:
            history = self.histories.get(run, [])
            last = history[-1] if history else None
            where = f"seq {last.seq} {type(last.payload).__name__}" if last else "no event"
            lines.append(f"  {run} (partition {partition_for(run, PARTITIONS)}): {where}")
        lines += [f"  read failed: {error}" for error in self.read_errors[-5:]]
        if self.workers is not None:
            lines += [proc.tail(12) for proc in self.workers.procs]
        return "\n".join(lines)

    def all_done(self) -> bool:
        """Every run this operator was asked to start has started and ended."""
        # Only this operator's runs count: another client's run (a hostile one) may end too.
        return len(self.runs) == self.expected and self.done.issuperset(self.runs)


# -- checks ---------------------------------------------------------------------------------


def read_effects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


@dataclass
class Verdict:
    figures: dict[str, Any]
    violations: list[str]

    def check(self) -> None:
        assert not self.violations, "\n".join(self.violations[:20])


async def read_runs(
    bootstrap: str, topics: Topics, *, partitions: int = PARTITIONS
) -> dict[str, list[tuple[int, int, EventEnvelope, bytes]]]:
    """Every run's events as a read_committed reader sees them: (partition, offset, event,
    bytes), in log order."""
    codec = Codec()
    event_log = KafkaLog(bootstrap, client_id="fault-checker")
    await event_log.start()
    runs: dict[str, list[tuple[int, int, EventEnvelope, bytes]]] = defaultdict(list)
    try:
        for partition in range(partitions):
            async for record in event_log.read(topics.runs, partition, 0):
                envelope = codec.decode_event(record.value)
                runs[envelope.run_id].append((partition, record.offset, envelope, record.value))
    finally:
        await event_log.close()
    return runs


def verify(
    runs: dict[str, list[tuple[int, int, EventEnvelope, bytes]]],
    expected: list[str],
    sent: dict[str, Sent],
    effects: list[dict[str, Any]],
    app: App,
) -> Verdict:
    violations: list[str] = []
    figures: dict[str, Any] = {"events": sum(len(events) for events in runs.values())}
    for run_id in expected:
        violations += _check_history(run_id, runs.get(run_id, []))
    figures["runs_completed"] = sum(1 for r in expected if _completed(runs.get(r)))
    violations += [f"run {r} did not complete" for r in expected if not _completed(runs.get(r))]
    decided, found = _check_decisions(runs, sent, violations)
    figures |= decided
    figures |= _check_effects(runs, effects, app, violations)
    figures["decisions_found"] = found
    return Verdict(figures, violations)


def _completed(events: list[tuple[int, int, EventEnvelope, bytes]] | None) -> bool:
    """The run's last event is RunCompleted, but for refusals after it: decisions held for an
    interrupt never raised are refused (DecisionRejected) when the run ends."""
    last = [e.payload for _, _, e, _ in events or () if not isinstance(e.payload, DecisionRejected)]
    return bool(last) and isinstance(last[-1], RunCompleted)


def _check_history(run_id: str, events: list[tuple[int, int, EventEnvelope, bytes]]) -> list[str]:
    problems = []
    seqs = [event.seq for _, _, event, _ in events]
    if seqs != list(range(len(seqs))):
        dupes = [s for s, n in Counter(seqs).items() if n > 1]
        problems.append(f"run {run_id}: seq {seqs[:40]} (duplicates {dupes})")
    ids = [event.event_id for _, _, event, _ in events]
    if len(set(ids)) != len(ids):
        problems.append(f"run {run_id}: duplicate event ids")
    if len({partition for partition, _, _, _ in events}) > 1:
        problems.append(f"run {run_id}: events on more than one partition")
    previous = GENESIS_HASH
    for _, offset, event, data in events:
        if event.prev_hash != previous:
            problems.append(f"run {run_id}: hash chain broken at seq {event.seq} (@{offset})")
            break
        previous = hash_encoded(data)
    return problems


def _check_decisions(
    runs: dict[str, list[tuple[int, int, EventEnvelope, bytes]]],
    sent: dict[str, Sent],
    violations: list[str],
) -> tuple[dict[str, Any], int]:
    """Every decision sent reached its run; applied at most once; one outcome per interrupt."""
    seen: Counter[str] = Counter()
    applied: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    for events in runs.values():
        for _, _, event, _ in events:
            payload = event.payload
            if isinstance(payload, DecisionAccepted | DecisionRejected | VoteRecorded):
                seen[payload.decision_id] += 1
            if isinstance(payload, DecisionHeld):
                seen[payload.decision_id] += 0
            if isinstance(payload, DecisionAccepted | VoteRecorded):
                applied[payload.decision_id] += 1
            if isinstance(payload, DecisionAccepted):
                closed[payload.interrupt_id] += 1
    lost = [d for d in sent if seen[d] == 0 and runs.get(sent[d].run_id)]
    violations += [f"decision {d} ({sent[d].kind} on {sent[d].run_id}) lost" for d in lost]
    violations += [f"decision {d} applied {n} times" for d, n in applied.items() if n > 1]
    violations += [f"interrupt {i} closed {n} times" for i, n in closed.items() if n > 1]
    figures = {
        "decisions_sent": len(sent),
        "decisions_lost": len(lost),
        "decisions_applied_twice": sum(1 for n in applied.values() if n > 1),
    }
    return figures, sum(1 for d in sent if seen[d])


def _check_effects(
    runs: dict[str, list[tuple[int, int, EventEnvelope, bytes]]],
    effects: list[dict[str, Any]],
    app: App,
    violations: list[str],
) -> dict[str, Any]:
    ran = Counter(effect["key"] for effect in effects)
    scheduled: dict[str, tuple[str, bool]] = {}
    completed: set[str] = set()
    reruns_approved: Counter[str] = Counter()
    for run_id, events in runs.items():
        in_doubt: dict[str, int] = {}
        for _, _, event, _ in events:
            p = event.payload
            key = f"{run_id}:{getattr(p, 'call', -1)}"
            if isinstance(p, ToolCallScheduled):
                scheduled[p.idempotency_key] = (p.tool, p.idempotent)
            elif isinstance(p, ToolCallCompleted):
                completed.add(key)
            elif isinstance(p, InterruptRaised) and p.request.kind == "in_doubt":
                in_doubt[p.interrupt_id] = p.call
            elif (
                isinstance(p, DecisionAccepted)
                and p.interrupt_id in in_doubt
                and p.kind == "approve"
            ):
                reruns_approved[f"{run_id}:{in_doubt[p.interrupt_id]}"] += 1
    idem = {k for k, (_, idempotent) in scheduled.items() if idempotent}
    non_idem = set(scheduled) - idem
    for key in sorted(idem & completed):
        if ran[key] == 0:
            violations.append(f"idempotent call {key} completed without its effect")
    for key in sorted(non_idem):
        if ran[key] > 1 + reruns_approved[key]:
            violations.append(
                f"non-idempotent {scheduled[key][0]} ran {ran[key]} times for {key} "
                f"with {reruns_approved[key]} re-runs approved"
            )
    orphans = [k for k in ran if k not in scheduled]
    for key in orphans:
        tool = next(e["tool"] for e in effects if e["key"] == key)
        spec = app.get_tool(tool)
        if spec is None or not spec.idempotent:
            violations.append(f"non-idempotent {tool} ran for {key} without a schedule in the log")
    return {
        "idempotent_keys": len(idem),
        "idempotent_effects": sum(ran[k] for k in idem),
        "idempotent_reexecutions": sum(max(0, ran[k] - 1) for k in idem),
        "non_idempotent_keys": len(non_idem),
        "non_idempotent_effects": sum(ran[k] for k in non_idem),
        "non_idempotent_reruns_approved": sum(reruns_approved.values()),
        "non_idempotent_silent_reruns": sum(1 for k in non_idem if ran[k] > 1 + reruns_approved[k]),
    }


def latency_figures(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "resume_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "resume_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "resume_max_ms": round(ordered[-1] * 1000, 1),
    }


def writers(events: list[tuple[int, int, EventEnvelope, bytes]]) -> Iterator[tuple[int, int, int]]:
    """(writer pid, partition, offset) of each event."""
    for partition, offset, event, _ in events:
        yield writer_of(event.event_id), partition, offset


def figures_of(
    operator: Operator, workers: Workers, verdict: Verdict, began: float
) -> dict[str, Any]:
    """The figures every scenario reports."""
    return {
        **verdict.figures,
        "in_doubt_raised": operator.in_doubt["raised"],
        "in_doubt_answered_ran": operator.in_doubt["respond"],
        "in_doubt_rerun_approved": operator.in_doubt["approve"],
        "worker_processes": len(workers.procs),
        "worker_crashes": len(workers.crashes()),
        **latency_figures(operator.latencies),
        "seconds": round(time.monotonic() - began, 1),
    }


# -- poison ---------------------------------------------------------------------------------

POISON_LIMIT = 65_536
"""COUNTERSIGN_MAX_MESSAGE_BYTES of the workers in the poison scenarios."""

POISON_REASONS = {
    "oversize": "limit",
    "huge_block_count": "array block declares",
    "unknown_fingerprint": "unknown schema fingerprint",
    "trailing_garbage": "trailing bytes",
    "not_avro": "not an Avro single-object message",
    "truncated": "",
    "run_event_as_command": "expected a command",
    "forged_route": "routed under partition map era",
}
"""Each kind of bad input, and what the dead-letter reason says about it."""


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _crafted_block_count(codec: Codec) -> bytes:
    """A message whose array declares 2**40 items in a few bytes (a decoder that trusts the
    count allocates terabytes): found by diffing an empty and a one-item array."""
    from events.run_events import InterruptEscalated

    def encoded(approvers: tuple[str, ...]) -> bytes:
        payload = InterruptEscalated(interrupt_id="i", level=1, approvers=approvers, reason="")
        return codec.encode(
            EventEnvelope(
                event_id="e",
                run_id="r",
                seq=0,
                occurred_at_us=1,
                agent="a",
                agent_version="1",
                causation_id="c",
                correlation_id="c",
                prev_hash="",
                payload=payload,
            )
        )

    empty, one = encoded(()), encoded(("zz",))
    start = next(i for i, (a, b) in enumerate(zip(empty, one, strict=False)) if a != b)
    return empty[:start] + _zigzag(2**40)


def poison(kind: str, codec: Codec, run_id: str, topic: str) -> Outgoing:
    """A bad command of `kind` for `topic` (see POISON_REASONS). A command keyed by another
    run id is not bad (it is forwarded to its run's partition); one whose route header claims
    a partition map newer than any the deployment has had is (a forgery, or a bug)."""
    good = codec.encode(
        StartRun(
            command_id=str(uuid.uuid4()),
            run_id=run_id,
            agent="chaos",
            input={"item": -1},
            requested_by=REQUESTER,
            issued_at_us=1,
        )
    )
    values = {
        "oversize": good[:10] + b"x" * (POISON_LIMIT + 1_000),
        "huge_block_count": _crafted_block_count(codec),
        "unknown_fingerprint": b"\xc3\x01" + b"\xde\xad\xbe\xef" * 2 + good[10:],
        "trailing_garbage": good + b"\x00garbage",
        "not_avro": b'{"command": "StartRun", "run_id": "%s"}' % run_id.encode(),
        "truncated": good[: len(good) // 2],
        "run_event_as_command": _run_event(codec, run_id),
        "forged_route": good,
    }
    if kind == "forged_route":
        elsewhere = (partition_for(run_id, PARTITIONS) + 1) % PARTITIONS
        headers = ((ROUTE_HEADER, b"visit:7:0"),)  # era 7: no such map was ever recorded
        return Outgoing(topic, run_id, good, elsewhere, headers)
    return Outgoing(topic, run_id, values[kind])


def _run_event(codec: Codec, run_id: str) -> bytes:
    return codec.encode(
        EventEnvelope(
            event_id="e",
            run_id=run_id,
            seq=0,
            occurred_at_us=1,
            agent="chaos",
            agent_version="1",
            causation_id="c",
            correlation_id="c",
            prev_hash="",
            payload=RunCompleted(output=None),
        )
    )


@dataclass(frozen=True)
class DeadLetter:
    value: bytes
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int


async def dead_letters(event_log: KafkaLog, topics: Topics) -> list[DeadLetter]:
    found = []
    for partition in range(PARTITIONS):
        async for record in event_log.read(topics.dlq, partition, 0):
            header = {name: value.decode() for name, value in record.headers}
            found.append(
                DeadLetter(
                    value=record.value,
                    reason=header.get("countersign.reason", ""),
                    source_topic=header.get("countersign.source.topic", ""),
                    source_partition=int(header.get("countersign.source.partition", "-1")),
                    source_offset=int(header.get("countersign.source.offset", "-1")),
                )
            )
    return found


async def command_at(event_log: KafkaLog, topics: Topics, partition: int, offset: int) -> bytes:
    async for record in event_log.read(topics.commands, partition, offset):
        return record.value
    raise AssertionError(f"no command at {partition}@{offset}")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
