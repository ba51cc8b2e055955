"""The web inbox: server-rendered pages and the fragments htmx swaps in (I/O: requests).

Pages work without JavaScript (plain forms, full pages); with it, htmx swaps fragments
(`HX-Request`), and `static/inbox.js` reloads them when the server-sent events say something
changed. Every form that changes anything carries the caller's CSRF token and a fresh
idempotency key: a double click decides once; two tabs decide once, and the second is told.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from countersign.web.api import inbox_query
from countersign.web.auth import LOGIN_COOKIE, SESSION_COOKIE, Caller, Forbidden
from countersign.web.cards import Card
from countersign.web.context import Web, bounded_body
from countersign.web.decisions import DecisionInvalid, edit_changes, edit_errors
from countersign.web.forms import fields_for, read_fields
from countersign.web.json_input import parse_json
from countersign.web.service import KeyReused, NotAllowed, NotFound, RequestClosed
from countersign.web.throttle import LoginThrottle
from events.json import Json, JsonObject

PAGE_WAIT_S = 10.0


def routes(web: Web) -> list[Route]:
    pages = _Pages(web)
    card = "/runs/{run_id}/requests/{interrupt_id}"
    return [
        Route("/health", pages.health),
        Route("/login", pages.login_form),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/", pages.inbox),
        Route("/inbox/list", pages.inbox_list),
        Route(card, pages.card),
        Route(f"{card}/decide", pages.decide, methods=["POST"]),
        Route(f"{card}/preview", pages.preview, methods=["POST"]),
        Route("/runs/{run_id}", pages.run),
        Route("/runs/{run_id}/verify", pages.verify),
    ]


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded body (bounded) as name → first value."""
    text = (await bounded_body(request)).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=500).items()}


class _Pages:
    def __init__(self, web: Web) -> None:
        self.web = web
        self._throttle = LoginThrottle()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.web.templates.TemplateResponse(request, name, context, status_code=status)

    def _base(self, caller: Caller) -> dict[str, Any]:
        return {"me": caller, "csrf": self.web.auth.csrf_token(caller)}

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "signing": self.web.service.publisher.signer.status})

    # -- login -----------------------------------------------------------------------------

    async def login_form(
        self, request: Request, *, problem: str = "", status: int = 200
    ) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = self.render(
            request, "login.html", status,
            csrf=self.web.auth.sessions.csrf_token(f"login:{nonce}"), problem=problem,
            next=_local(request.query_params.get("next", "/")),
            enabled=self.web.auth.login_enabled, me=None,
        )  # fmt: skip
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=900, httponly=True, samesite="strict",
                            secure=self._secure(request))  # fmt: skip
        return response

    async def login(self, request: Request) -> Response:
        form = await form_of(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        try:
            self.web.auth.check_origin(request)
        except Forbidden as exc:
            return await self.login_form(request, problem=str(exc), status=403)
        if not nonce or not self.web.auth.sessions.csrf_ok(f"login:{nonce}", form.get("csrf")):
            return await self.login_form(request, problem="the form expired: try again", status=403)
        name = form.get("username", "")[:200]
        if self._throttle.throttled(name):
            return await self.login_form(request, problem="too many tries: wait a few minutes",
                                         status=429)  # fmt: skip
        users = self.web.auth.users
        user = users.login(name, form.get("password", "")) if users is not None else None
        if user is None:
            self._throttle.failed(name)
            return await self.login_form(request, problem="wrong name or password", status=401)
        session = self.web.auth.sessions.open(user.name, user.roles)
        response = RedirectResponse(_local(form.get("next", "/")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, session.id, max_age=int(self.web.auth.sessions.ttl_s),
            httponly=True, samesite="strict", secure=self._secure(request),
        )  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE)
        return response

    def _secure(self, request: Request) -> bool:
        """Cookies are Secure when served over https, or behind a TLS proxy whose public
        address (COUNTERSIGN_WEB_URL) is https even if it talks plain HTTP to us."""
        return request.url.scheme == "https" or self.web.settings.base_url.startswith("https:")

    async def logout(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        form = await form_of(request)
        try:
            self.web.auth.check_form(request, caller, form.get("csrf"))
        except Forbidden as exc:
            return HTMLResponse(str(exc), status_code=403)
        self.web.auth.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- the inbox -------------------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        return await self._list(request, caller, "inbox.html")

    async def inbox_list(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        return await self._list(request, caller, "_list.html")

    async def _list(self, request: Request, caller: Caller, template: str) -> Response:
        params = dict(request.query_params)
        try:
            page = await self.web.service.page(inbox_query(params, caller.principal, caller.roles))
        except ValueError as exc:
            return self.render(request, "error.html", 400, message=str(exc), **self._base(caller))
        query = {k: v for k, v in params.items() if k in ("status", "sla", "tool", "agent", "mine")}
        return self.render(request, template, page=page, params=query,
                           query_string="&".join(f"{k}={quote(v)}" for k, v in query.items()),
                           **self._base(caller))  # fmt: skip

    # -- one card --------------------------------------------------------------------------

    async def card(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        return await self._card(request, caller)

    async def _card(
        self, request: Request, caller: Caller, status: int = 200, **extra: Any
    ) -> Response:
        run_id, interrupt_id = request.path_params["run_id"], request.path_params["interrupt_id"]
        try:
            card = await self.web.service.card(run_id, interrupt_id)
        except NotFound as exc:
            return self.render(request, "error.html", 404, message=str(exc), **self._base(caller))
        fragment = (
            request.headers.get("hx-request") == "true" and "hx-boosted" not in request.headers
        )
        return self.render(
            request, "_card.html" if fragment else "card.html", status,
            card=card, **card_context(card, caller), **self._base(caller), **extra,
        )  # fmt: skip

    async def _posted(self, request: Request) -> tuple[Caller, dict[str, str], Card] | Response:
        """A card's form: the caller, its fields (CSRF checked) and the card; or the refusal."""
        caller = await self.web.page_caller(request)
        form = await form_of(request)
        try:
            self.web.auth.check_form(request, caller, form.get("csrf"))
            card = await self.web.service.card(
                request.path_params["run_id"], request.path_params["interrupt_id"]
            )
        except Forbidden as exc:
            return HTMLResponse(str(exc), status_code=403)
        except NotFound as exc:
            return HTMLResponse(str(exc), status_code=404)
        return caller, form, card

    async def preview(self, request: Request) -> Response:
        """An edit checked and compared, nothing sent: errors, or the diff and a send button."""
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        caller, form, card = posted
        args, errors = read_fields(card.request.args_schema, form, prefix="arg.")
        errors = errors or edit_errors(args, card.request)
        changes = edit_changes(card.request, args) if not errors and isinstance(args, dict) else {}
        return self.render(
            request, "_preview.html", 422 if errors else 200,
            card=card, errors=errors, changes=changes, args_json=json.dumps(args),
            reason=form.get("reason", ""), key=secrets.token_urlsafe(16), **self._base(caller),
        )  # fmt: skip

    async def decide(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        caller, form, card = posted
        try:
            body = decision_body(form, card)
            sent = await self.web.service.decide(
                principal=caller.principal, roles=caller.roles,
                run_id=card.row.run_id, interrupt_id=card.row.interrupt_id, body=body,
                idempotency_key=form.get("idempotency_key") or secrets.token_urlsafe(16),
                wait_s=PAGE_WAIT_S,
            )  # fmt: skip
        except NotFound as exc:
            return HTMLResponse(str(exc), status_code=404)
        except (RequestClosed, NotAllowed) as exc:
            status = 403 if isinstance(exc, NotAllowed) else 409
            return await self._card(request, caller, status, notice=("refused", str(exc)))
        except (DecisionInvalid, KeyReused) as exc:
            errors = exc.errors if isinstance(exc, DecisionInvalid) else [str(exc)]
            return await self._card(request, caller, 422, notice=("invalid", "; ".join(errors)))
        outcome = sent.outcome
        if outcome is None:
            notice = ("pending", "Sent. The outcome is not known yet: this card updates itself.")
        elif outcome.accepted:
            notice = ("accepted", _accepted_text(outcome.status, outcome.kind))
        else:
            notice = ("refused", f"Refused: {outcome.reason}")
        return await self._card(request, caller, notice=notice)

    # -- a run -----------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        run_id = request.path_params["run_id"]
        run = await self.web.service.queries.get_run(run_id)
        if run is None:
            return self.render(request, "error.html", 404, message="no such run is projected",
                               **self._base(caller))  # fmt: skip
        timeline = await self.web.service.timeline(run_id)
        audit = await self.web.service.audit(run_id)
        return self.render(request, "run.html", run=run, timeline=timeline, audit=audit,
                           **self._base(caller))  # fmt: skip

    async def verify(self, request: Request) -> Response:
        caller = await self.web.page_caller(request)
        verdict = await self.web.service.verify(request.path_params["run_id"])
        return self.render(request, "_verify.html", verdict=verdict, **self._base(caller))


def card_context(card: Card, caller: Caller) -> dict[str, Any]:
    """What the card template needs besides the card: the forms, and may the caller act."""
    request = card.request
    return {
        "may_decide": card.may_decide(caller.principal, caller.roles),
        "edit_fields": fields_for(request.args_schema, request.args or {}, prefix="arg.")
        if "edit" in card.row.allowed
        else [],
        "answer_fields": fields_for(request.answer_schema, None, prefix="answer.")
        if "respond" in card.row.allowed
        else [],
        "key": secrets.token_urlsafe(16),
        "args_text": {k: _shown(v) for k, v in (card.row.args or {}).items()},
        "context_text": None if request.context is None else json.dumps(request.context, indent=2),
    }


def decision_body(form: Mapping[str, str], card: Card) -> JsonObject:
    """The JSON a page's form means (the same body an API client sends)."""
    kind = form.get("kind", "")
    body: JsonObject = {"kind": kind, "reason": form.get("reason", ""),
                        "digest": form.get("digest", "")}  # fmt: skip
    if kind == "edit":
        if "args_json" in form:
            try:
                parsed = parse_json(form["args_json"])
            except ValueError as exc:
                raise DecisionInvalid([f"the edited arguments are refused: {exc}"]) from exc
            body["args"] = parsed
        else:
            args, errors = read_fields(card.request.args_schema, form, prefix="arg.")
            if errors:
                raise DecisionInvalid(errors)
            body["args"] = args
    if kind == "respond":
        answer, errors = read_fields(card.request.answer_schema, form, prefix="answer.")
        if errors:
            raise DecisionInvalid(errors)
        body["response"] = answer
    return body


def _accepted_text(status: str, kind: str) -> str:
    if status == "counted":
        return "Your approval is counted; the request needs more approvals."
    done = {"approve": "Approved", "edit": "Edited", "reject": "Rejected", "respond": "Answered"}
    return f"{done.get(kind, 'Decided')}. The run goes on."


def _shown(value: Json) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _local(target: str) -> str:
    """Only a path of this site (never `//host` or a scheme): no open redirect after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
