"""Who is calling: a bearer token (OIDC) or a login session, and whether a change is theirs.

Every route but `/health`, `/static/*` and the login form itself asks `Authenticator.caller`.
A request that carries `Authorization: Bearer` is judged by its token alone (an invalid token
is a 401, never a fall-back to a cookie); otherwise by its session cookie. Roles are the
token's (when a roles claim is configured) or the users file's, plus the directory file's.

A state-changing request (POST) must also prove it is not forged by another site:
- from the page (form fields): its CSRF token, bound to the session or to the bearer's
  principal (`countersign.web.sessions`);
- from an API client: a JSON body (a browser cannot send one cross-site without a CORS
  preflight, which this server never grants) and, when it is authenticated by a session
  cookie, the `X-CSRF-Token` header too;
and in both cases `Sec-Fetch-Site: cross-site` or an `Origin` other than ours is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request

from countersign.web.oidc import AuthError, OidcVerifier
from countersign.web.sessions import Sessions
from countersign.web.users import Users

SESSION_COOKIE = "countersign_session"
LOGIN_COOKIE = "countersign_login"


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    roles: tuple[str, ...]
    via: Literal["session", "bearer"]
    binding: str
    """What this caller's CSRF tokens are bound to."""


class Forbidden(Exception):
    """Authenticated, but this request may not do this (the message says why)."""


class NotJson(Forbidden):
    """An API change sent as anything but application/json (a 415: send JSON)."""


class Authenticator:
    def __init__(
        self,
        sessions: Sessions,
        *,
        users: Users | None = None,
        directory: Mapping[str, tuple[str, ...]] | None = None,
        oidc: OidcVerifier | None = None,
        origin: str,
    ) -> None:
        self.sessions = sessions
        self.users = users
        self._directory = directory or {}
        self._oidc = oidc
        self._origin = _origin_of(origin)

    @property
    def login_enabled(self) -> bool:
        return self.users is not None and bool(self.users.by_name)

    def roles(self, principal: str, claimed: tuple[str, ...] = ()) -> tuple[str, ...]:
        return tuple(sorted({*claimed, *self._directory.get(principal, ())}))

    async def caller(self, connection: HTTPConnection) -> Caller | None:
        """The authenticated caller; None when the request carries no credentials.
        `AuthError` for credentials that do not hold."""
        header = connection.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("use Authorization: Bearer <token>")
            if self._oidc is None:
                raise AuthError("bearer tokens are not accepted: no OIDC issuer is configured")
            identity = await self._oidc.verify(token.strip())
            return Caller(
                identity.principal,
                self.roles(identity.principal, identity.roles),
                "bearer",
                f"bearer:{identity.issuer}:{identity.principal}",
            )
        session = self.sessions.get(connection.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        roles = self.roles(session.principal, session.roles)
        return Caller(session.principal, roles, "session", f"session:{session.id}")

    def csrf_token(self, caller: Caller) -> str:
        return self.sessions.csrf_token(caller.binding)

    def check_form(self, request: Request, caller: Caller, token: str | None) -> None:
        """A page's POST: same origin and the caller's CSRF token."""
        self.check_origin(request)
        if not self.sessions.csrf_ok(caller.binding, token):
            raise Forbidden("the form's CSRF token is missing or not this session's: reload")

    def check_api(self, request: Request, caller: Caller) -> None:
        """An API POST: a JSON body, same origin, and the CSRF header for cookie sessions."""
        self.check_origin(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise NotJson("send the body as application/json")
        if caller.via == "session" and not self.sessions.csrf_ok(
            caller.binding, request.headers.get("x-csrf-token")
        ):
            raise Forbidden("a session's API call needs its X-CSRF-Token header")

    def check_origin(self, request: Request) -> None:
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise Forbidden("cross-site requests are refused")
        origin = request.headers.get("origin")
        if origin is not None and origin != "null" and _origin_of(origin) != self._origin:
            own = _origin_of(str(request.base_url))
            if _origin_of(origin) != own:
                raise Forbidden("the request comes from another origin")
        if origin == "null":
            raise Forbidden("the request comes from an opaque origin")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
