"""OIDC bearer tokens end to end: the server finds the issuer's JWKS through its discovery
document over HTTP (a local issuer on 127.0.0.1), checks tokens with it, takes the principal
and roles from the claims and the directory file, and serves the API and the page to them."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from countersign.web.config import OidcSettings, WebSettings
from tests import web_agents
from tests.helpers import eventually
from tests.web_stack import Stack, settings_for, web_stack

pytestmark = [pytest.mark.postgres]
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def issuer() -> AsyncIterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse({"issuer": base, "jwks_uri": f"{base}/jwks"})

    async def jwks(request: Request) -> JSONResponse:
        public = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
        return JSONResponse({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]})

    app = Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                            Route("/jwks", jwks)])  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="off"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=30)
    try:
        yield base
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def stack(
    issuer: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    home = Path(tmp_path_factory.mktemp("oidc-home"))
    directory = home / "directory.json"
    directory.write_text(json.dumps({"principals": {"dave@example.com": ["auditor"]}}))
    oidc = OidcSettings(issuer=issuer, audience="countersign", principal_claim="email",
                        roles_claim="groups")  # fmt: skip
    web = WebSettings(port=0, oidc=oidc, directory_file=directory)
    settings = settings_for(home, f"o{uuid.uuid4().hex[:8]}", pg_url)
    async with web_stack(settings, web_agents.app, web=web, worker=False) as running:
        yield running


def token(issuer: str, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": issuer, "aud": "countersign", "iat": now, "exp": now + 300, "sub": "u-7",
            "email": "Dave@Example.com", "groups": ["support-lead"]}  # fmt: skip
    return jwt.encode({**body, **claims}, KEY, "RS256", headers={"kid": "k1"})


async def test_bearer_tokens_from_the_issuer_open_the_api_and_the_page(
    stack: Stack, issuer: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as client:
        bearer = {"Authorization": f"Bearer {token(issuer)}"}
        me = (await client.get("/api/me", headers=bearer)).json()
        assert me["principal"] == "dave@example.com"
        assert me["roles"] == ["auditor", "support-lead"]  # the token's and the directory's
        assert me["via"] == "bearer"
        page = await client.get("/", headers=bearer)
        assert page.status_code == 200
        assert "dave@example.com" in page.text
        inbox = await client.get("/api/inbox", headers=bearer, params={"mine": "1"})
        assert inbox.status_code == 200
        for bad in (token(issuer, aud="other"), token(issuer, exp=int(time.time()) - 600),
                    token("https://evil.example"), "garbage"):  # fmt: skip
            refused = await client.get("/api/me", headers={"Authorization": f"Bearer {bad}"})
            assert refused.status_code == 401, bad
            assert refused.headers["www-authenticate"].startswith("Bearer")
        form = await client.post("/logout", headers=bearer, data={"csrf": "forged"})
        assert form.status_code == 403  # a page's form without its CSRF token
