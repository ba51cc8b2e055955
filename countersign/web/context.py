"""What every route shares: the authenticator, the service, the templates, and the checks
each route makes first (who is calling, may it change anything). (I/O: reads requests.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.templating import Jinja2Templates

from countersign.web.auth import Authenticator, Caller
from countersign.web.config import WebSettings
from countersign.web.json_input import parse_json
from countersign.web.oidc import AuthError
from countersign.web.service import InboxService
from events.json import Json

MAX_BODY_BYTES = 262_144


class LoginRequired(Exception):
    """A page asked for without a login: the page answers with the login form."""


@dataclass(frozen=True)
class Web:
    settings: WebSettings
    auth: Authenticator
    service: InboxService
    templates: Jinja2Templates

    async def api_caller(self, connection: HTTPConnection) -> Caller:
        try:
            caller = await self.auth.caller(connection)
        except AuthError as exc:
            _unauthorized(str(exc))
        if caller is None:
            _unauthorized("log in, or send Authorization: Bearer <token>")
        return caller

    async def page_caller(self, request: Request) -> Caller:
        try:
            caller = await self.auth.caller(request)
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from exc
        if caller is None:
            raise LoginRequired()
        return caller


def _unauthorized(message: str) -> NoReturn:
    raise HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="countersign"'})


async def json_body(request: Request) -> Json:
    body = await bounded_body(request)
    try:
        return parse_json(body)
    except ValueError as exc:
        raise HTTPException(400, f"the body is refused: {exc}") from exc


async def bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
