"""The replay tooling end to end on the embedded-default stack (the PostgreSQL log, a worker,
the projector): replay online and from an exported file (the same report), the "can I
deploy?" table, a redacted export, an import into a fresh log (byte for byte), and a fork
from the command line (dry run: no effect; its origin linked in `runs show`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from countersign import bootstrap
from countersign.cli import main
from countersign.settings import Settings
from engine.log.port import Topics, partition_for
from engine.log.postgres import PostgresLog
from events.run_events import InterruptRaised, RunCompleted
from examples import refund
from projections import LiveStore, Projector
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

pytestmark = pytest.mark.postgres

APP = "examples.refund:app"


@dataclass
class Stack:
    url: str
    prefix: str
    harness: Harness

    @property
    def topics(self) -> Topics:
        return self.harness.topics

    async def project(self) -> None:
        """Run the projector until it has read everything in the log."""
        store = await LiveStore.connect(self.url, home=f"c_{self.prefix}")
        try:
            projector = Projector(
                self.harness.log, store, self.topics.runs, "p", self.harness.codec
            )
            stop = asyncio.Event()
            task = asyncio.create_task(projector.run(stop))

            async def caught_up() -> bool:
                return sum((await projector.lag()).values()) == 0

            await eventually(caught_up, timeout=60)
            stop.set()
            await asyncio.wait_for(task, 30)
        finally:
            await store.close()

    async def raws(self, run_id: str) -> list[bytes]:
        partition = partition_for(run_id, await self.harness.log.partition_count(self.topics.runs))
        read = self.harness.log.read(self.topics.runs, partition, 0)
        return [r.value async for r in read if r.key == run_id]


async def _stack(url: str, prefix: str, *, worker: bool = True) -> Stack:
    log = PostgresLog(url, client_id=prefix)
    await log.start()
    topics = Topics(prefix)
    await log.ensure_topics(topics, 4)
    harness = Harness(log, topics, timeout=60.0)
    if worker:  # trusting the development issuer the CLI signs with, on today's clock
        trust = await bootstrap.trust(Settings.from_env(), development=True)
        now = Clock(int(time.time() * 1_000_000))  # the CLI's proofs are issued now
        await harness.start_worker(refund.app, now, trust=trust)
    return Stack(url, prefix, harness)


@pytest.fixture
def cli_env(pg_url: str, fresh_prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name, value in {
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PROJECTION_SCHEMA": f"c_{fresh_prefix}",
        "COUNTERSIGN_LOG_LEVEL": "warning",
    }.items():
        monkeypatch.setenv(name, value)
    return fresh_prefix


@pytest.fixture
async def stack(pg_url: str, cli_env: str) -> AsyncIterator[Stack]:
    built = await _stack(pg_url, cli_env)
    try:
        yield built
    finally:
        await built.harness.halt_all()
        await built.harness.log.close()


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """The CLI in a thread (it runs its own event loop), while the worker runs in this one."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    assert "error" not in err or code != 0, err
    if "--json" not in argv:
        return code, out
    # The in-process worker's log lines share stdout: the command's JSON is its last line.
    return code, json.loads(out.strip().splitlines()[-1])


async def _runs(stack: Stack) -> tuple[str, str, InterruptRaised]:
    """A refund approved and done, and one waiting for its approval."""
    publisher = stack.harness.publisher
    done = await publisher.start_run(
        "refund", {"order_id": "A-17", "amount": 2400}, requested_by="bob"
    )
    [raised] = await stack.harness.open_interrupts(done, 1)
    await publisher.submit_decision(done, raised.interrupt_id, "approve", decided_by="alice")
    await stack.harness.wait_for(done, lambda ps: isinstance(ps[-1], RunCompleted), "done")
    waiting = await publisher.start_run(
        "refund", {"order_id": "A-18", "amount": 900}, requested_by="bob"
    )
    [open_one] = await stack.harness.open_interrupts(waiting, 1)
    await stack.project()
    return done, waiting, open_one


async def test_online_offline_and_can_i_deploy(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done, waiting, _ = await _runs(stack)
    exported = tmp_path / "done.cshist"

    code, online = await _cli(capsys, "replay", done, "--app", APP, "--json")
    assert (code, online["outcome"], online["events"]) == (0, "identical", 9)
    code, _ = await _cli(capsys, "export", done, "-o", str(exported))
    assert code == 0
    code, offline = await _cli(capsys, "replay", "--file", str(exported), "--app", APP, "--json")
    assert (code, offline) == (0, online)  # offline equals online

    code, changed = await _cli(
        capsys, "replay", done, "--app", "tests.replay_variants:arguments_changed", "--json"
    )
    assert (code, changed["outcome"], changed["seq"]) == (3, "diverges", 3)

    code, table = await _cli(capsys, "replay", "--all", "--status", "waiting", "--app", APP)
    assert code == 0
    assert f"{waiting}" in table
    assert "1 runs: 1 identical" in table
    code, table = await _cli(
        capsys, "replay", "--all", "--app", "tests.replay_variants:version_two", "--json"
    )
    assert code == 3
    assert {r["run_id"]: r["outcome"] for r in table["runs"]} == {done: "pinned", waiting: "pinned"}

    redacted = tmp_path / "redacted.cshist"
    code, _ = await _cli(capsys, "export", done, "-o", str(redacted), "--redact")
    data = redacted.read_bytes()
    assert code == 0
    assert b"A-17" not in data
    assert b"alice" not in data
    assert b"A-17" in exported.read_bytes()


async def test_import_into_a_fresh_log_is_byte_identical(
    stack: Stack,
    tmp_path: Path,
    fresh_prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done, _, _ = await _runs(stack)
    exported = tmp_path / "done.cshist"
    await _cli(capsys, "export", done, "-o", str(exported))
    _, online = await _cli(capsys, "replay", done, "--app", APP, "--json")

    other = f"{fresh_prefix}x"
    monkeypatch.setenv("COUNTERSIGN_TOPIC_PREFIX", other)
    monkeypatch.setenv("COUNTERSIGN_PROJECTION_SCHEMA", f"c_{other}")
    fresh = await _stack(stack.url, other, worker=False)
    try:
        code, out = await _cli(capsys, "import", str(exported))
        assert code == 0, out
        assert await fresh.raws(done) == await stack.raws(done)  # byte for byte
        await fresh.project()
        code, again = await _cli(capsys, "replay", done, "--app", APP, "--json")
        assert (code, again) == (0, online)
        code, out = await _cli(capsys, "import", str(exported))
        assert code == 1  # the run is there already
    finally:
        await fresh.harness.log.close()


async def test_fork_from_the_cli(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    _, waiting, raised = await _runs(stack)
    ran = list(refund.EFFECTS)

    code, forked = await _cli(
        capsys, "fork", waiting, "--at", raised.interrupt_id,
        "--decide", "approve", "--by", "alice", "--reason", "try it", "--wait", "60", "--json",
    )  # fmt: skip

    assert (code, forked["decision"], forked["tool_mode"]) == (0, "accepted", "dry-run")
    fork_id = forked["run_id"]
    payloads = await stack.harness.wait_for(
        fork_id, lambda ps: isinstance(ps[-1], RunCompleted), "the fork completes"
    )
    assert ran == refund.EFFECTS  # the dry run moved no money
    assert payloads[-1].output["refund"] == {"dry_run": True, "tool": "refund"}  # type: ignore[union-attr, index, call-overload]
    await stack.project()
    code, shown = await _cli(capsys, "runs", "show", fork_id)
    assert code == 0
    assert f"dry-run fork of {waiting}@{forked['forked_at']}" in shown
    code, _ = await _cli(capsys, "fork", waiting, "--at", "no-such-interrupt")
    assert code == 1
