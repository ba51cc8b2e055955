"""Documents from servers we trust but do not control (an issuer's JWKS, a registry's answer)
and files the deployment owns: oversized, endless, nested past the stack, not JSON, or over
plain http to another host — each refused with the reason, never buffered whole, never a
crash; a worker's trust keeps the keys it knew."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from countersign.decision_input import json_object, parse_sets
from engine.errors import ConfigurationError
from engine.http_fetch import FetchError, fetch_document
from engine.trust.jws import generate_key
from engine.trust.loading import TrustLoader, read_json
from tests.helpers import loopback_http


class Served:
    def __init__(self) -> None:
        self.body = b"{}"
        self.endless = False


@pytest.fixture
def server() -> Iterator[tuple[Served, str]]:
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if served.endless:  # no length: a stream that never ends
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b" " * 65_536)
                except OSError:
                    return
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http(Handler) as base:
        yield served, f"{base}/doc"


async def test_a_document_is_fetched(server: tuple[Served, str]) -> None:
    served, url = server
    served.body = b'{"keys": []}'
    assert await fetch_document(url) == b'{"keys": []}'


async def test_an_oversized_or_endless_answer_is_cut_off(server: tuple[Served, str]) -> None:
    served, url = server
    served.body = b" " * 2_000
    with pytest.raises(FetchError, match="over 1000 bytes"):
        await fetch_document(url, limit=1_000)
    served.endless = True
    with pytest.raises(FetchError, match="over 1048576 bytes"):
        await fetch_document(url)


@pytest.mark.parametrize(
    "url", ["http://idp.example/jwks", "ftp://127.0.0.1/jwks", "file:///etc/passwd", "jwks"]
)
async def test_keys_come_over_https_or_from_loopback_only(url: str) -> None:
    with pytest.raises(FetchError, match="use https"):
        await fetch_document(url)


async def test_an_unreachable_server_is_a_fetch_error() -> None:
    with pytest.raises(FetchError):
        await fetch_document("http://127.0.0.1:9/jwks", timeout_s=1.0)


@pytest.mark.parametrize(
    "content",
    [b"[" * 5_000 + b"]" * 5_000, b'{"a": NaN}', b"\xff\xfe", b"{", b" " * 1_048_577],
)
def test_a_hostile_file_is_refused_with_its_name(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="trust file"):
        read_json(path, "trust file")


@pytest.mark.parametrize(
    "body", [b"[" * 5_000 + b"]" * 5_000, b'{"keys": 5}', b"\xff\xfe", b" " * 1_048_577]
)
async def test_a_hostile_jwks_url_keeps_the_keys_known_so_far(
    server: tuple[Served, str], tmp_path: Path, body: bytes
) -> None:
    served, url = server
    key = generate_key("k1", "https://idp").public().jwk
    served.body = json.dumps({"keys": [key]}).encode()
    trust_file = tmp_path / "trust.json"
    trust_file.write_text(json.dumps({"issuers": {"https://idp": {"jwks_uri": url}}}))
    loader = TrustLoader(trust_file, refetch_after_s=0.0)
    before = await loader.load()
    assert before.key("https://idp", "k1") is not None

    served.body = body  # the provider now serves junk; a proof names a new key
    after = await loader.refresh([("https://idp", "k-new")])

    assert after.key("https://idp", "k1") is not None
    assert after.key("https://idp", "k-new") is None


@pytest.mark.parametrize("flag", ["[" * 5_000, '{"a": NaN}'])
def test_a_hostile_json_flag_is_refused_with_its_name(flag: str) -> None:
    with pytest.raises(ConfigurationError, match="--input is not valid JSON"):
        json_object(flag, "--input")
    assert parse_sets([f"x={flag}"], str) == {"x": flag}  # --set NAME=TEXT: the text itself
