"""The web server's signing adapter: with the trust work's signing module, a decision goes out
with a proof the workers' gate accepts for the authenticated principal (and for no other
command); without it (a build before that work is merged), commands go out unsigned and the
server says so. Whichever this build is, the test checks that build's behaviour."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from countersign.settings import Settings
from countersign.web.signing import development_signer, server_signer
from events.codec import Codec
from events.commands import SubmitDecision

TRUST = importlib.util.find_spec("engine.trust") is not None


def decision(by: str) -> SubmitDecision:
    return SubmitDecision(decision_id="d-1", run_id="r-1", interrupt_id="i-1", kind="approve",
                          decided_by=by, issued_at_us=time.time_ns() // 1000)  # fmt: skip


async def test_the_server_signs_as_the_person_it_authenticated(tmp_path: Path) -> None:
    signer = development_signer(Settings(home=tmp_path))
    command = decision("alice")
    value = Codec().encode(command)
    headers = signer.headers(value, command, ("support-lead",))
    if not TRUST:
        assert headers == ()
        assert signer.status.startswith("unsigned")
        assert server_signer(Settings(home=tmp_path)).status.startswith("unsigned")
        return
    from engine.trust import keys
    from engine.trust.gate import CommandGate
    from engine.trust.loading import TrustLoader

    assert [name for name, _ in headers] == ["countersign-proof"]
    assert signer.status.startswith("signed as")
    store = await TrustLoader(keys.trust_path(tmp_path)).load()
    gate = CommandGate(store, require_signed=True)
    now = int(time.time())
    proven = gate.check(command, value, headers, now)
    assert getattr(proven, "principal", None) == "alice", proven
    other = decision("erin")
    carried = gate.check(other, Codec().encode(other), headers, now)
    assert "refused" in str(carried)
