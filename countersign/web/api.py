"""The JSON API (`/api/...`), as the OpenAPI document (`countersign.web.openapi`) describes it.

Every route asks who is calling first; a decision also passes the API's forgery checks
(`Authenticator.check_api`). Errors are `{"error": sentence, "errors": [sentences]}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from countersign.web.auth import Forbidden, NotJson
from countersign.web.context import Web, json_body
from countersign.web.decisions import DecisionInvalid, check_idempotency_key
from countersign.web.live import Change, outcome_json
from countersign.web.openapi import openapi_document
from countersign.web.service import KeyReused, NotAllowed, NotFound, RequestClosed, Sent
from events.json import Json
from projections.inbox import SlaState
from projections.inbox_query import InboxQuery
from projections.stats import DIMENSIONS

HEARTBEAT_S = 15.0


def error(status: int, *errors: str) -> JSONResponse:
    return JSONResponse({"error": errors[0], "errors": list(errors)}, status_code=status)


def routes(web: Web) -> list[Route]:
    api = _Api(web)
    return [
        Route("/api/openapi.json", api.openapi),
        Route("/api/me", api.me),
        Route("/api/inbox", api.inbox),
        Route("/api/runs/{run_id}", api.run),
        Route("/api/runs/{run_id}/requests/{interrupt_id}", api.card),
        Route("/api/runs/{run_id}/requests/{interrupt_id}/decision", api.decide, methods=["POST"]),
        Route("/api/runs/{run_id}/decisions/{decision_id}", api.outcome),
        Route("/api/runs/{run_id}/timeline", api.timeline),
        Route("/api/runs/{run_id}/audit", api.audit),
        Route("/api/runs/{run_id}/verify", api.verify),
        Route("/api/stats", api.stats),
        Route("/api/recommendations", api.recommendations),
        Route("/api/events", api.events),
    ]


class _Api:
    def __init__(self, web: Web) -> None:
        self.web = web

    async def openapi(self, request: Request) -> Response:
        await self.web.api_caller(request)
        return JSONResponse(openapi_document(self.web.settings.base_url))

    async def me(self, request: Request) -> Response:
        caller = await self.web.api_caller(request)
        return JSONResponse({
            "principal": caller.principal, "roles": list(caller.roles), "via": caller.via,
            "csrf_token": self.web.auth.csrf_token(caller),
        })  # fmt: skip

    async def inbox(self, request: Request) -> Response:
        caller = await self.web.api_caller(request)
        try:
            query = inbox_query(dict(request.query_params), caller.principal, caller.roles)
            page = await self.web.service.page(query)
        except ValueError as exc:
            return error(400, str(exc))
        return JSONResponse(page.to_json())

    async def run(self, request: Request) -> Response:
        await self.web.api_caller(request)
        found = await self.web.service.queries.get_run(request.path_params["run_id"])
        if found is None:
            return error(404, "no such run is projected")
        return JSONResponse(found.to_json())

    async def card(self, request: Request) -> Response:
        caller = await self.web.api_caller(request)
        try:
            card = await self.web.service.card(
                request.path_params["run_id"], request.path_params["interrupt_id"]
            )
        except NotFound as exc:
            return error(404, str(exc))
        body = card.to_json()
        body["you_may_decide"] = card.may_decide(caller.principal, caller.roles)
        return JSONResponse(body)

    async def decide(self, request: Request) -> Response:
        caller = await self.web.api_caller(request)
        try:
            self.web.auth.check_api(request, caller)
        except Forbidden as exc:
            return error(415 if isinstance(exc, NotJson) else 403, str(exc))
        try:
            wait_s = wait_param(request, self.web.settings.max_wait_s, default=0.0)
        except ValueError as exc:
            return error(400, str(exc))
        try:
            key = check_idempotency_key(request.headers.get("idempotency-key"))
            body: Json = await json_body(request)
            sent = await self.web.service.decide(
                principal=caller.principal, roles=caller.roles,
                run_id=request.path_params["run_id"],
                interrupt_id=request.path_params["interrupt_id"],
                body=body, idempotency_key=key, wait_s=wait_s,
            )  # fmt: skip
        except NotFound as exc:
            return error(404, str(exc))
        except NotAllowed as exc:
            return error(403, str(exc))
        except RequestClosed as exc:
            return error(409, str(exc))
        except DecisionInvalid as exc:
            return error(422, *exc.errors)
        except (KeyReused, ValueError) as exc:
            return error(422, str(exc))
        return sent_response(sent)

    async def outcome(self, request: Request) -> Response:
        await self.web.api_caller(request)
        try:
            wait_s = wait_param(request, self.web.settings.max_wait_s, default=0.0)
        except ValueError as exc:
            return error(400, str(exc))
        run_id, decision_id = request.path_params["run_id"], request.path_params["decision_id"]
        found = await self.web.service.outcome(run_id, decision_id, wait_s)
        if found is None:
            return JSONResponse({"decision_id": decision_id, "status": "pending"}, 202)
        return JSONResponse(outcome_json(found))

    async def timeline(self, request: Request) -> Response:
        await self.web.api_caller(request)
        entries = await self.web.service.timeline(request.path_params["run_id"])
        return JSONResponse([e.to_json() for e in entries])

    async def audit(self, request: Request) -> Response:
        await self.web.api_caller(request)
        rows = await self.web.service.audit(request.path_params["run_id"])
        return JSONResponse([r.to_json() for r in rows])

    async def verify(self, request: Request) -> Response:
        await self.web.api_caller(request)
        verdict = await self.web.service.verify(request.path_params["run_id"])
        return JSONResponse(verdict.to_json())

    async def stats(self, request: Request) -> Response:
        await self.web.api_caller(request)
        by = request.query_params.get("by", "tool")
        if by not in DIMENSIONS:
            return error(400, f"by must be one of {', '.join(DIMENSIONS)}")
        rows = await self.web.service.insights.stats(by)
        return JSONResponse([r.to_json() for r in rows])

    async def recommendations(self, request: Request) -> Response:
        await self.web.api_caller(request)
        found = await self.web.service.insights.recommendations()
        return JSONResponse([r.to_json() for r in found])

    async def events(self, request: Request) -> Response:
        await self.web.api_caller(request)
        if not self.web.service.live.has_room():  # the page falls back to its countdowns
            response = error(503, "too many open event streams: try again later")
            response.headers["Retry-After"] = "30"
            return response
        return StreamingResponse(
            changes(self.web, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


async def changes(web: Web, request: Request) -> AsyncIterator[str]:
    """Server-sent events: `inbox` changes, and a comment every 15 s to keep proxies open."""
    async with web.service.live.subscribe() as queue:
        yield "retry: 2000\n\n"
        live = web.service.live
        while not (live.closing.is_set() or await request.is_disconnected()):
            change: Change | None = None
            with contextlib.suppress(TimeoutError):
                change = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            if change is not None and change.kind == "bye":
                return
            yield change.to_sse() if change is not None else ": keep-alive\n\n"


def sent_response(sent: Sent) -> JSONResponse:
    if sent.outcome is None:
        return JSONResponse(
            {"decision_id": sent.decision_id, "status": "pending",
             "outcome_url": f"/api/runs/{sent.run_id}/decisions/{sent.decision_id}"},
            status_code=202,
        )  # fmt: skip
    body = outcome_json(sent.outcome)
    if body["status"] == "refused":  # an error like the others, with the outcome beside it
        reason = f"refused: {sent.outcome.reason}"
        return JSONResponse({**body, "error": reason, "errors": [reason]}, status_code=409)
    return JSONResponse(body)


def wait_param(request: Request, longest: float, *, default: float) -> float:
    text = request.query_params.get("wait")
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError("wait must be a number of seconds") from exc
    if not 0 <= value <= longest:
        raise ValueError(f"wait must be between 0 and {longest:g} seconds")
    return value


def inbox_query(params: dict[str, str], principal: str, roles: tuple[str, ...]) -> InboxQuery:
    """The query string of `/api/inbox` (and of the page's list) as an `InboxQuery`."""
    sla = params.get("sla") or None
    if sla is not None and sla not in get_args(SlaState):
        raise ValueError("sla must be one of overdue, due_soon, on_time, no_deadline")
    status = params.get("status") or "open"
    if status not in ("open", "closed"):
        raise ValueError("status must be open or closed")
    mine = params.get("mine", "") in ("1", "true", "yes", "on")
    try:
        limit = int(params.get("limit") or 100)
        offset = int(params.get("offset") or 0)
    except ValueError as exc:
        raise ValueError("limit and offset must be whole numbers") from exc
    return InboxQuery(
        status=status,  # type: ignore[arg-type]
        sla=sla,  # type: ignore[arg-type]
        tool=params.get("tool") or None,
        agent=params.get("agent") or None,
        principal=principal if mine else None,
        roles=roles if mine else (),
        limit=limit,
        offset=offset,
    ).checked()
