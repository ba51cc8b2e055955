"""Login sessions and CSRF tokens for the page (I/O: draws random ids, reads the clock).

A session lives on the server (an id in an HttpOnly, SameSite=Strict cookie, Secure when
served over https): it names the principal and roles the login proved, and expires after its
time to live or at logout. At most `max_sessions` are kept (the oldest go first), so logging
in in a loop cannot fill the memory.

A CSRF token is an HMAC of what it is bound to — the session id, or the principal of a
bearer-authenticated page — under the server's secret: a page of another site can neither
read nor guess it, and a token of one session is worthless in another. The login form,
before any session, is bound to a random value in a short-lived cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    principal: str
    roles: tuple[str, ...]
    expires_at: float


class Sessions:
    def __init__(
        self,
        secret: bytes,
        ttl_s: float,
        *,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._open: OrderedDict[str, Session] = OrderedDict()

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def open(self, principal: str, roles: tuple[str, ...]) -> Session:
        session = Session(secrets.token_urlsafe(32), principal, roles, self._clock() + self._ttl_s)
        self._open[session.id] = session
        while len(self._open) > self._max:
            self._open.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        session = self._open.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._open[session_id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._open.pop(session_id, None)

    def csrf_token(self, binding: str) -> str:
        return hmac.new(self._secret, f"csrf\n{binding}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, binding: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(binding), str(token))
