"""Authorization from proven identity, through the real worker (in-memory log).

A worker that requires signatures trusts one identity provider (it signs for anyone; the
attacker, mallory, holds a valid identity of her own) and refuses, every time: a decision
naming someone else than its signer, a start naming another requester, a requester who
approves their own run, a quorum made of invented names, a cancel by a stranger, a proof
carried onto another decision, and unsigned commands. None of them changes the run.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest

from engine.agent.app import App
from engine.agent.authorization import Level
from engine.agent.policies import Always
from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics
from engine.trust.access import Access
from engine.trust.gate import PROOF_HEADER, CommandGate
from engine.trust.jws import SigningKey, generate_key
from engine.trust.loading import Trust
from engine.trust.signing import proof_header
from engine.trust.store import TrustStore
from events.commands import CancelRun, Command, StartRun, SubmitDecision
from events.json import Json, JsonObject
from events.run_events import DecisionAccepted, RunCancelled, RunCompleted, VoteRecorded
from tests.approvals_harness import START_US, Clock, Harness
from tests.helpers import eventually

IDP = generate_key("idp-1", "https://idp.example")
NOW_S = START_US // 1_000_000
TRIALS = 8

app = App("signed", directory={"alice": ["treasury"], "carol": ["treasury"]})


@app.tool(policy=Always(approvers=("role:treasury",), levels=(Level(("role:treasury",), 2),)))
async def pay(amount: int) -> Json:
    return {"paid": amount}


@app.tool(policy=Always(approvers=("role:treasury",)))
async def refund(amount: int) -> Json:
    return {"refunded": amount}


@app.agent("pay")
async def pay_agent(ctx, input: JsonObject) -> Json:  # type: ignore[no-untyped-def]
    result = await ctx.tool("pay", {"amount": input["amount"]})
    return result.value  # type: ignore[no-any-return]


@app.agent("refund")
async def refund_agent(ctx, input: JsonObject) -> Json:  # type: ignore[no-untyped-def]
    result = await ctx.tool("refund", {"amount": input["amount"]})
    return result.value  # type: ignore[no-any-return]


TRUST = Trust(
    CommandGate(TrustStore.parse({"issuers": {IDP.issuer: {"keys": [IDP.public().jwk]}}})),
    Access.parse({"principals": {"Dave": ["treasury"], "oscar": ["operator"]}}),
)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=2)
    topics = Topics(f"signed-{uuid.uuid4().hex[:6]}")
    await event_log.ensure_topics(topics, 2)
    harness = Harness(event_log, topics, timeout=10.0)
    await harness.start_worker(app, Clock(), trust=TRUST)
    try:
        yield harness
    finally:
        await harness.halt_all()


async def send(
    h: Harness,
    command: Command,
    *,
    subject: str | None = None,
    key: SigningKey | None = IDP,
    proof: bytes | None = None,
) -> None:
    value = h.codec.encode(command)
    headers: tuple[tuple[str, bytes], ...] = (h.codec.schema_header(value),)
    if proof is not None:
        headers += ((PROOF_HEADER, proof),)
    elif key is not None:
        headers += (proof_header(value, command, key, now_s=NOW_S, subject=subject),)
    await h.log.publish([Outgoing(h.topics.commands, command.run_id, value, headers=headers)])


async def start(h: Harness, agent: str, by: str = "bob", amount: int = 100) -> str:
    run_id = str(uuid.uuid4())
    command = StartRun(
        command_id=str(uuid.uuid4()),
        run_id=run_id,
        agent=agent,
        input={"amount": amount},
        requested_by=by,
        issued_at_us=START_US,
    )
    await send(h, command)
    return run_id


def decision(run_id: str, interrupt_id: str, by: str, kind: str = "approve") -> SubmitDecision:
    return SubmitDecision(
        decision_id=str(uuid.uuid4()),
        run_id=run_id,
        interrupt_id=interrupt_id,
        kind=kind,
        decided_by=by,
        issued_at_us=START_US,
    )


async def refused(h: Harness, run_id: str, command: SubmitDecision, kind: str) -> None:
    outcome = await h.outcome(command.decision_id, run_id)
    assert outcome.status == "refused", outcome
    assert kind in outcome.reason, outcome.reason


async def letters_with(h: Harness, text: str, count: int = 1) -> list[str]:
    """The dead letters that mention `text`, once there are `count` of them."""

    async def found() -> list[str] | None:
        letters = [(r.header("countersign.reason") or b"").decode() for r in await h.dead_letters()]
        hits = [x for x in letters if text in x]
        return hits if len(hits) >= count else None

    hits: list[str] = await eventually(found, timeout=10.0, message=f"a dead letter: {text}")
    return hits


def invented() -> str:
    return random.choice(["alice", "Alice", "carol", "dave", "ALICE ", "root", "admin", "bob"])


async def test_an_honest_run_goes_through(h: Harness) -> None:
    run_id = await start(h, "refund")
    [raised] = await h.open_interrupts(run_id, 1)
    await send(h, decision(run_id, raised.interrupt_id, "Alice"))

    payloads = await h.wait_for(run_id, lambda p: isinstance(p[-1], RunCompleted), "completed")

    [accepted] = [p for p in payloads if isinstance(p, DecisionAccepted)]
    assert accepted.decided_by == "alice"  # the proven principal, in canonical form


async def test_forged_decided_by_is_refused_every_time(h: Harness) -> None:
    run_id = await start(h, "refund")
    [raised] = await h.open_interrupts(run_id, 1)
    forged = [decision(run_id, raised.interrupt_id, invented()) for _ in range(TRIALS)]
    for command in forged:
        await send(h, command, subject="mallory")  # her own valid identity

    for command in forged:
        await refused(h, run_id, command, "refused (forged principal)")
    assert not [p for p in await h.payloads(run_id) if isinstance(p, DecisionAccepted)]


async def test_a_forged_requester_is_refused_and_a_requester_cannot_approve(h: Harness) -> None:
    named_other = StartRun(
        command_id="c-1",
        run_id="r-forged",
        agent="refund",
        input={"amount": 1},
        requested_by="bob",
        issued_at_us=START_US,
    )
    await send(h, named_other, subject="alice")
    run_id = await start(h, "refund", by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    own = decision(run_id, raised.interrupt_id, "alice")
    await send(h, own)

    await refused(h, run_id, own, "alice started this run and may not approve its requests")
    await letters_with(h, "requested_by names 'bob' but the proof is signed for 'alice'")
    assert await h.payloads("r-forged") == []


async def test_a_quorum_of_invented_names_is_refused(h: Harness) -> None:
    run_id = await start(h, "pay")
    [raised] = await h.open_interrupts(run_id, 1)
    invented_votes = [decision(run_id, raised.interrupt_id, name) for name in ("carol", "dave")]
    for command in invented_votes:
        await send(h, command, subject="alice")  # one person signing for two
    unsigned = [decision(run_id, raised.interrupt_id, name) for name in ("carol", "dave")]
    for command in unsigned:
        await send(h, command, key=None)
    first = decision(run_id, raised.interrupt_id, "alice")
    again = decision(run_id, raised.interrupt_id, "ALICE")
    await send(h, first)
    await send(h, again)

    for command in invented_votes:
        await refused(h, run_id, command, "refused (forged principal)")
    for command in unsigned:
        await refused(h, run_id, command, "refused (unsigned)")
    await refused(h, run_id, again, "alice already approved this request")
    payloads = await h.payloads(run_id)
    assert [p.decided_by for p in payloads if isinstance(p, VoteRecorded)] == ["alice"]
    assert not [p for p in payloads if isinstance(p, DecisionAccepted)]

    await send(h, decision(run_id, raised.interrupt_id, "dave"))  # treasury, by the directory file
    await h.wait_for(run_id, lambda p: isinstance(p[-1], RunCompleted), "two real approvers")


async def test_a_cancel_by_a_stranger_is_refused(h: Harness) -> None:
    run_id = await start(h, "refund", by="bob")
    await h.open_interrupts(run_id, 1)
    for _ in range(TRIALS):
        stranger = random.choice(["mallory", "alice", "eve"])
        cancel = CancelRun(
            command_id=str(uuid.uuid4()), run_id=run_id, cancelled_by=stranger, issued_at_us=1
        )
        await send(h, cancel)
    by_owner = CancelRun(command_id="c-own", run_id=run_id, cancelled_by="", issued_at_us=1)
    await send(h, by_owner, subject="Bob")

    payloads = await h.wait_for(run_id, lambda p: isinstance(p[-1], RunCancelled), "cancelled")

    assert [p.cancelled_by for p in payloads if isinstance(p, RunCancelled)] == ["bob"]
    assert len(await letters_with(h, "may not cancel this run", TRIALS)) == TRIALS


async def test_a_signature_carried_onto_another_decision_is_refused(h: Harness) -> None:
    run_id = await start(h, "refund")
    [raised] = await h.open_interrupts(run_id, 1)
    genuine = decision(run_id, raised.interrupt_id, "alice", kind="reject")
    value = h.codec.encode(genuine)
    _, proof = proof_header(value, genuine, IDP, now_s=NOW_S)
    carried = []
    for kind in ("approve", "approve", "edit", "reject"):
        other = decision(run_id, raised.interrupt_id, "alice", kind=kind)
        carried.append(other)
        await send(h, other, proof=proof)

    for command in carried:
        await refused(h, run_id, command, "refused (replayed)")
    assert not [p for p in await h.payloads(run_id) if isinstance(p, DecisionAccepted)]


async def test_unsigned_and_unknown_issuers_are_refused_and_dead_lettered(h: Harness) -> None:
    await send(h, StartRun(command_id="u", run_id="r-u", agent="refund", input={},
                           requested_by="bob", issued_at_us=1), key=None)  # fmt: skip
    rogue = generate_key("idp-1", "https://idp.example.evil")
    await send(h, StartRun(command_id="v", run_id="r-v", agent="refund", input={},
                           requested_by="bob", issued_at_us=1), key=rogue)  # fmt: skip

    await letters_with(h, "refused (unsigned)")
    await letters_with(h, "refused (unknown issuer)")
    assert await h.payloads("r-u") == []
    assert await h.payloads("r-v") == []
