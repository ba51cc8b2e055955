"""The web server's signing adapter: a decision goes out with a proof the workers' gate accepts
for the authenticated principal (and for no other command); a server without a key sends
commands unsigned and says so."""

from __future__ import annotations

import time
from pathlib import Path

from countersign.settings import Settings
from countersign.web.signing import ServerSigner, development_signer, server_signer
from engine.trust import keys
from engine.trust.gate import CommandGate, Proven, Refused
from engine.trust.loading import TrustLoader
from events.codec import Codec
from events.commands import SubmitDecision


def decision(by: str) -> SubmitDecision:
    return SubmitDecision(
        decision_id=f"d-{by}", run_id="r-1", interrupt_id="i-1", kind="approve", decided_by=by,
        issued_at_us=time.time_ns() // 1000,
    )  # fmt: skip


async def test_the_server_signs_as_the_person_it_authenticated(tmp_path: Path) -> None:
    signer = development_signer(Settings(home=tmp_path))
    command = decision("alice")
    value = Codec().encode(command)
    headers = signer.headers(value, command, ("support-lead",))
    assert [name for name, _ in headers] == ["countersign-proof"]
    assert signer.status.startswith("signed as")
    gate = CommandGate(await TrustLoader(keys.trust_path(tmp_path)).load(), require_signed=True)
    now = int(time.time())
    proven = gate.check(command, value, headers, now)
    assert isinstance(proven, Proven)
    assert (proven.principal, proven.signed) == ("alice", True)
    other = decision("erin")
    carried = gate.check(other, Codec().encode(other), headers, now)
    assert isinstance(carried, Refused)


def test_without_a_key_commands_go_out_unsigned_and_the_server_says_so(tmp_path: Path) -> None:
    found = server_signer(Settings(home=tmp_path))  # an empty home: no key
    command = decision("alice")
    assert found.headers(Codec().encode(command), command, ()) == ()
    assert found.status.startswith("unsigned")
    assert ServerSigner(None).status == found.status
    development_signer(Settings(home=tmp_path))  # makes the home's default key
    assert server_signer(Settings(home=tmp_path)).status.startswith("signed as")
