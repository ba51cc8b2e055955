"""The server decides as the person it authenticated, end to end on the embedded log with a
worker that requires proofs: a person approves in the API, the command goes out with the
server's proof for that person, and the worker's gate proves them (the audit names them);
an unsigned command naming the same person, and the person's proof carried onto another
command, are refused and change nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from engine.log.port import Outgoing, Record
from engine.trust import keys
from engine.trust.gate import CommandGate, Proven, Refused
from engine.trust.loading import TrustLoader
from events.commands import SubmitDecision
from tests.helpers import eventually
from tests.web_stack import Stack, fresh_stack

pytestmark = [pytest.mark.postgres]
PROOF = "countersign-proof"


@pytest.fixture(scope="module")
async def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with fresh_stack(pg_url, tmp_path_factory, "signing", signed=True) as running:
        yield running


def decision_url(item: dict[str, object]) -> str:
    return f"/api/runs/{item['run_id']}/requests/{item['interrupt_id']}/decision"


async def decision_records(stack: Stack, run_id: str) -> list[tuple[Record, SubmitDecision]]:
    found = []
    for record in await stack.commands(run_id):
        command = stack.runtime.codec.decode_command(record.value)
        if isinstance(command, SubmitDecision):
            found.append((record, command))
    return found


async def test_the_server_signs_for_the_person_and_the_gate_proves_them(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "S-1", "amount": 900})
    item = await stack.open_request(run_id)
    async with stack.client("alice") as alice:
        signing = (await alice.get("/health")).json()["signing"]
        approved = await alice.post(
            decision_url(item), json={"kind": "approve"}, headers={"Idempotency-Key": "s1"},
            params={"wait": 30},
        )  # fmt: skip
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "accepted"

        async def audited() -> list[str]:  # the audit is a projection: it follows the log
            audit = (await alice.get(f"/api/runs/{run_id}/audit")).json()
            return [a["actor"] for a in audit if a["action"] == "decision_accepted"]

        assert await eventually(audited, timeout=60) == ["alice"]
    [(record, command)] = await decision_records(stack, run_id)
    assert command.decided_by == "alice"
    assert signing.startswith("signed as")
    proven = await gate_check(stack, command, record)
    assert isinstance(proven, Proven), proven
    assert (proven.principal, proven.signed) == ("alice", True)
    async with stack.client("alice") as alice:
        await refused_and_nothing_changes(stack, alice, record)


async def refused_and_nothing_changes(
    stack: Stack, client: httpx.AsyncClient, signed: Record
) -> None:
    """An unsigned decision naming alice, and alice's proof on another decision: refused."""
    run_id = await stack.start("refund", {"order_id": "S-2", "amount": 901})
    item = await stack.open_request(run_id)
    codec, log = stack.runtime.codec, stack.runtime.log
    proof = [(k, v) for k, v in signed.headers if k == PROOF]
    for carried, expected in (((), "unsigned"), (proof, "other bytes")):
        forged = SubmitDecision(
            decision_id=str(uuid.uuid4()), run_id=run_id, interrupt_id=str(item["interrupt_id"]),
            kind="approve", decided_by="alice", issued_at_us=time.time_ns() // 1000,
        )  # fmt: skip
        value = codec.encode(forged)
        headers = (codec.schema_header(value), *carried)
        await log.publish([Outgoing(stack.runtime.topics.commands, run_id, value, headers=headers)])
        outcome = await client.get(f"/api/runs/{run_id}/decisions/{forged.decision_id}",
                                   params={"wait": 30})  # fmt: skip
        assert outcome.json()["status"] == "refused", outcome.text
        assert expected in outcome.json()["reason"], outcome.text
    run = (await client.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "waiting"


async def gate_check(stack: Stack, command: SubmitDecision, record: Record) -> Proven | Refused:
    """What the workers' gate, over the stack's trust file, makes of a command as published."""
    store = await TrustLoader(keys.trust_path(stack.settings.home)).load()
    gate = CommandGate(store, require_signed=True)
    return gate.check(command, record.value, record.headers, int(time.time()))
