"""The web application put together, and served (I/O).

    async with bootstrap.connected(settings, client_id="countersign-web") as runtime, \\
               bootstrap.read_side(settings) as store:
        async with serve(settings, web_settings, runtime, store, signer=...) as server:
            print(server.url); await stop.wait()

Starlette on uvicorn: the API and the pages are a few dozen routes over our own typed
service, so a router, requests and responses are all we need from a framework; our rows are
frozen dataclasses with `to_json()` and decisions are checked by `engine.agent.argspec`, so
FastAPI's pydantic models would be a second copy of every type (and of every check), and its
dependency injection a second way to say "who is calling". The OpenAPI document is written
out and a test holds it to the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from countersign.bootstrap import Runtime
from countersign.trusting import read_access
from countersign.web import api, pages, templating
from countersign.web.auth import Authenticator
from countersign.web.config import WebSettings
from countersign.web.context import LoginRequired, Web
from countersign.web.live import LiveFeed
from countersign.web.oidc import OidcVerifier
from countersign.web.service import InboxService
from countersign.web.sessions import Sessions
from countersign.web.signing import ServerSigner, SignedPublisher
from countersign.web.users import Users, UsersError, read_users
from engine.errors import ConfigurationError
from projections.insights import Insights
from projections.queries import Queries
from projections.store import ProjectionStore

log = structlog.get_logger(__name__)

SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)  # fmt: skip


class SecurityHeaders:
    """Adds the headers above to every response, and `Server-Timing: app;dur=<ms>` (the time
    until the response started: what `bench/web.py` reports). A pure ASGI middleware: SSE
    streams pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message["headers"] = [
                    *message.get("headers", []), *SECURITY_HEADERS, (b"server-timing", took),
                ]  # fmt: skip
            await send(message)

        await self.app(scope, receive, with_headers)


def application(web: Web) -> Starlette:
    static = str(resources.files("countersign.web") / "static")

    async def login_required(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail, "errors": [exc.detail]},
                                status_code=exc.status_code, headers=exc.headers)  # fmt: skip
        return web.templates.TemplateResponse(
            request, "error.html", {"message": exc.detail, "me": None},
            status_code=exc.status_code, headers=exc.headers,
        )  # fmt: skip

    app = Starlette(
        routes=[
            *pages.routes(web),
            *api.routes(web),
            Mount("/static", StaticFiles(directory=static)),
        ],
        exception_handlers={LoginRequired: login_required, HTTPException: http_error},
    )
    app.add_middleware(SecurityHeaders)
    return app


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("countersign.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    templating.install(env)
    return Jinja2Templates(env=env)


def authenticator(
    web_settings: WebSettings, extra_directory: Mapping[str, tuple[str, ...]] = {}
) -> Authenticator:
    """Sessions, the users file (when it exists), the directory, and the OIDC verifier."""
    users: Users | None = None
    path = web_settings.users_file
    try:
        if path is not None and path.exists():
            users = read_users(path)
        directory = dict(extra_directory)
        if web_settings.directory_file is not None:
            for name, roles in read_access(web_settings.directory_file).directory.items():
                directory[name] = tuple(sorted({*directory.get(name, ()), *roles}))
    except (UsersError, ConfigurationError) as exc:
        raise ValueError(str(exc)) from exc
    secret = web_settings.secret or secrets.token_bytes(32)
    sessions = Sessions(secret, web_settings.session_ttl.total_seconds())
    oidc = OidcVerifier(web_settings.oidc) if web_settings.oidc is not None else None
    return Authenticator(sessions, users=users, directory=directory, oidc=oidc,
                         origin=web_settings.base_url)  # fmt: skip


@dataclass(frozen=True)
class Serving:
    url: str
    web: Web
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def serve(
    web_settings: WebSettings,
    runtime: Runtime,
    store: ProjectionStore,
    *,
    signer: ServerSigner,
    directory: Mapping[str, tuple[str, ...]] = {},
) -> AsyncIterator[Serving]:
    """The web inbox served on `web_settings.host:port` for the block (port 0: a free one)."""
    queries = Queries(store, runtime.codec)
    live = LiveFeed(runtime.approvals(), runtime.log, runtime.topics.approvals, queries)
    service = InboxService(
        queries=queries,
        insights=Insights(store, due_soon=web_settings.due_soon),
        verify_source=store,
        event_log=runtime.log,
        runs_topic=runtime.topics.runs,
        codec=runtime.codec,
        publisher=SignedPublisher(runtime.log, runtime.topics, runtime.codec, signer),
        live=live,
    )
    web = Web(web_settings, authenticator(web_settings, directory), service, templates())
    config = uvicorn.Config(
        application(web), host=web_settings.host, port=web_settings.port, log_config=None,
        access_log=False, lifespan="off", proxy_headers=True, server_header=False,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    listening = listen(web_settings.host, web_settings.port)  # here: OSError, not SystemExit
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(live.run(stop))
        serving = group.create_task(server.serve(sockets=[listening]))
        try:
            await _started(server, serving)
            await live.ready.wait()
            url = _url(web_settings, server)
            log.info("web_serving", url=url, signing=signer.status,
                     login=web.auth.login_enabled, oidc=web_settings.oidc is not None)  # fmt: skip
            yield Serving(url, web, server)
        finally:
            server.should_exit = True
            stop.set()


async def _started(server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
    while not server.started:
        if task.done():
            task.result()  # the bind failed: raise why
            raise OSError("the web server stopped before it started")
        await asyncio.sleep(0.02)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: a free port). Bound here, so a port in use is an
    `OSError` the caller can handle (uvicorn would exit the process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"the web inbox cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _url(web_settings: WebSettings, server: uvicorn.Server) -> str:
    if web_settings.public_url:
        return web_settings.base_url
    port = web_settings.port
    for listener in server.servers:
        for sock in listener.sockets:
            port = sock.getsockname()[1]
    return f"http://{web_settings.host}:{port}"
