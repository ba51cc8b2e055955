"""Loading trust: a JWKS URL (a local HTTP server on 127.0.0.1), keys rotated in without a
restart, fetches rate-limited against forged key ids, a trust file read again when changed,
and local keys made and picked as the CLI does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from engine.log.port import Record
from engine.trust import keys
from engine.trust.gate import CommandGate, Proven, Refused
from engine.trust.jws import generate_key
from engine.trust.loading import Trust, TrustLoader
from engine.trust.signing import proof_header
from events.codec import Codec
from events.commands import SubmitDecision
from tests.helpers import loopback_http

CODEC = Codec()
NOW = 1_800_000_000


class Jwks:
    """A JWKS endpoint whose keys a test changes; it counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, object]] = []
        self.fetches = 0


@pytest.fixture
def jwks() -> Iterator[tuple[Jwks, str]]:
    served = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.fetches += 1
            body = json.dumps({"keys": served.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http(Handler) as base:
        yield served, f"{base}/jwks.json"


def record(key_name: str, issuer: str) -> tuple[SubmitDecision, Record]:
    key = generate_key(key_name, issuer)
    command = SubmitDecision(decision_id=key_name, run_id="r", interrupt_id="i", kind="approve",
                             decided_by="alice", issued_at_us=1)  # fmt: skip
    value = CODEC.encode(command)
    return command, Record(
        "c", 0, 0, "r", value, 0, (proof_header(value, command, key, now_s=NOW),)
    )


async def test_a_key_rotated_in_at_the_jwks_url_is_fetched_once_it_is_named(
    jwks: tuple[Jwks, str], tmp_path: Path
) -> None:
    served, url = jwks
    old, new = generate_key("k-old", "https://idp"), generate_key("k-new", "https://idp")
    served.keys = [old.public().jwk]
    trust_file = tmp_path / "trust.json"
    trust_file.write_text(json.dumps({"issuers": {"https://idp": {"jwks_uri": url}}}))
    loader = TrustLoader(trust_file, refetch_after_s=0.0)
    trust = Trust(CommandGate(await loader.load()), access=None, loader=loader)  # type: ignore[arg-type]
    assert trust.gate.store.key("https://idp", "k-old") is not None

    served.keys = [old.public().jwk, new.public().jwk]  # the provider rotates
    command = SubmitDecision(decision_id="d", run_id="r", interrupt_id="i", kind="approve",
                             decided_by="alice", issued_at_us=1)  # fmt: skip
    value = CODEC.encode(command)
    rotated = Record("c", 0, 0, "r", value, 0, (proof_header(value, command, new, now_s=NOW),))
    gate = await trust.prepare([[rotated]])

    assert isinstance(gate.check(command, value, rotated.headers, NOW), Proven)
    assert served.fetches == 2


async def test_forged_key_ids_cannot_make_the_worker_hammer_the_provider(
    jwks: tuple[Jwks, str], tmp_path: Path
) -> None:
    served, url = jwks
    trust_file = tmp_path / "trust.json"
    trust_file.write_text(json.dumps({"issuers": {"https://idp": {"jwks_uri": url}}}))
    loader = TrustLoader(trust_file, refetch_after_s=3600.0)
    trust = Trust(CommandGate(await loader.load()), access=None, loader=loader)  # type: ignore[arg-type]

    forged = [record(f"forged-{n}", "https://idp")[1] for n in range(20)]
    gate = await trust.prepare([forged])

    assert served.fetches == 1  # the load; no refetch within refetch_after_s
    command, one = record("forged-x", "https://idp")
    refused = gate.check(command, one.value, one.headers, NOW)
    assert isinstance(refused, Refused)
    assert refused.kind == "unknown issuer"


async def test_a_changed_trust_file_is_read_again_when_a_proof_needs_it(tmp_path: Path) -> None:
    loader = TrustLoader(keys.trust_path(tmp_path))
    trust = Trust(CommandGate(await loader.load()), access=None, loader=loader)  # type: ignore[arg-type]
    made = keys.create_key(tmp_path, issuer="gateway")  # `countersign keys create`, meanwhile
    command = SubmitDecision(decision_id="d", run_id="r", interrupt_id="i", kind="approve",
                             decided_by="alice", issued_at_us=1)  # fmt: skip
    value = CODEC.encode(command)
    headers = (proof_header(value, command, made.key, now_s=NOW),)

    gate = await trust.prepare([[Record("c", 0, 0, "r", value, 0, headers)]])

    assert isinstance(gate.check(command, value, headers, NOW), Proven)


def test_local_keys_are_private_and_picked_by_subject(tmp_path: Path) -> None:
    default = keys.create_key(tmp_path, issuer="gateway")
    alice = keys.create_key(tmp_path, subject="Alice")

    assert (default.path.stat().st_mode & 0o777) == 0o600
    assert default.default
    assert not alice.default
    assert alice.key.issuer == "local:alice"
    assert keys.signing_key(tmp_path, "alice", env={}).kid == alice.key.kid  # type: ignore[union-attr]
    assert keys.signing_key(tmp_path, "bob", env={}).kid == default.key.kid  # type: ignore[union-attr]
    env = {"COUNTERSIGN_SIGNING_KEY": json.dumps(alice.key.private_jwk())}
    assert keys.signing_key(tmp_path, "bob", env=env).kid == alice.key.kid  # type: ignore[union-attr]
    trusted = json.loads(keys.trust_path(tmp_path).read_text())["issuers"]
    assert trusted["local:alice"]["subjects"] == ["alice"]
    assert "subjects" not in trusted["gateway"]


def test_the_development_issuer_is_made_once(tmp_path: Path) -> None:
    first = keys.ensure_dev_issuer(tmp_path)
    again = keys.ensure_dev_issuer(tmp_path)

    assert first.kid == again.kid
    assert first.issuer == keys.DEV_ISSUER
    trusted = json.loads(keys.trust_path(tmp_path).read_text())["issuers"]
    assert trusted[keys.DEV_ISSUER]["development"] is True
