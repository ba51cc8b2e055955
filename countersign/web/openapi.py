"""The API's OpenAPI 3.1 document, written out (Pure). A test holds it and the routes to each
other: every `/api` route is documented, and every documented path is served."""

from __future__ import annotations

from events.json import Json, JsonObject

_ERROR: JsonObject = {"$ref": "#/components/schemas/Error"}
_OUTCOME: JsonObject = {"$ref": "#/components/schemas/Outcome"}
_RUN_ID: JsonObject = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_INTERRUPT_ID: JsonObject = {"name": "interrupt_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}  # fmt: skip
_WAIT: JsonObject = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "number", "minimum": 0, "maximum": 60},
    "description": "seconds to wait for the outcome (long-poll); 0 answers at once",
}


def _json(schema: Json, description: str) -> JsonObject:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(summary: str, schema: Json, *params: Json) -> JsonObject:
    return {"get": {
        "summary": summary, "parameters": list(params),
        "responses": {"200": _json(schema, "OK"), "400": _json(_ERROR, "a bad parameter"),
                      "401": _json(_ERROR, "not authenticated"),
                      "404": _json(_ERROR, "not projected")},
    }}  # fmt: skip


_SCHEMAS: JsonObject = {
    "Error": {"type": "object", "required": ["error", "errors"], "properties": {
        "error": {"type": "string"}, "errors": {"type": "array", "items": {"type": "string"}}}},
    "InboxItem": {"type": "object", "description": "projections.inbox.InboxItem.to_json",
                  "required": ["interrupt_id", "run_id", "status", "sla", "what"]},
    "InboxPage": {"type": "object", "required": ["items", "total", "counts"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/InboxItem"}},
        "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "now": {"type": "string", "format": "date-time"}}},
    "Card": {"type": "object", "description": "an InboxItem plus the request as raised "
             "(arguments, schemas, digest), the run, and whether the caller may decide",
             "required": ["interrupt_id", "run_id", "request", "digest", "you_may_decide"]},
    "Decision": {"type": "object", "required": ["kind"], "additionalProperties": False,
                 "properties": {
        "kind": {"enum": ["approve", "edit", "reject", "respond"]},
        "reason": {"type": "string", "maxLength": 2000,
                   "description": "required for reject: the agent is told it"},
        "args": {"type": "object", "description": "edit: the new arguments, checked against "
                 "the tool's argument schema before anything is sent"},
        "response": {"description": "respond: the answer, checked against the answer schema"},
        "digest": {"type": "string", "description": "the card's digest you decided on: a "
                   "request that changed since is refused"}}},
    "Outcome": {"type": "object", "required": ["decision_id", "status"], "properties": {
        "decision_id": {"type": "string"},
        "status": {"enum": ["accepted", "refused", "counted", "held", "pending"]},
        "accepted": {"type": "boolean"}, "kind": {"type": "string"},
        "decided_by": {"type": "string"}, "reason": {"type": "string"},
        "outcome_url": {"type": "string"}}},
    "Me": {"type": "object", "required": ["principal", "roles"], "properties": {
        "principal": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}},
        "via": {"enum": ["session", "bearer"]}, "csrf_token": {"type": "string"}}},
}  # fmt: skip


def openapi_document(base_url: str) -> JsonObject:
    anything: JsonObject = {"type": "object"}
    rows: JsonObject = {"type": "array", "items": anything}
    inbox_params: list[Json] = [
        {"name": "status", "in": "query", "schema": {"enum": ["open", "closed"]}},
        {"name": "sla", "in": "query",
         "schema": {"enum": ["overdue", "due_soon", "on_time", "no_deadline"]}},
        {"name": "tool", "in": "query", "schema": {"type": "string"}},
        {"name": "agent", "in": "query", "schema": {"type": "string"}},
        {"name": "mine", "in": "query", "schema": {"type": "boolean"},
         "description": "only what the caller may decide now"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 10000}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    ]  # fmt: skip
    decide: JsonObject = {"post": {
        "summary": "Decide as the authenticated caller (the server signs the command)",
        "parameters": [_RUN_ID, _INTERRUPT_ID, _WAIT, {"name": "Idempotency-Key",
                       "in": "header", "required": True, "schema": {"type": "string",
                       "maxLength": 200}, "description": "the same key (and body) decides once"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {
            "200": _json(_OUTCOME, "accepted, or counted towards a quorum"),
            "202": _json(_OUTCOME, "sent; the outcome is not known yet: GET outcome_url"),
            "400": _json(_ERROR, "not JSON, NaN, nested past 32 levels, or a bad wait"),
            "401": _json(_ERROR, "not authenticated"),
            "403": _json(_ERROR, "you may not decide it, or a forged request (origin, CSRF)"),
            "413": _json(_ERROR, "a body over 256 KiB"),
            "415": _json(_ERROR, "a body that is not application/json"),
            "404": _json(_ERROR, "no such request is projected"),
            "409": _json(_ERROR, "closed already, or refused by the engine (the reason)"),
            "422": _json(_ERROR, "invalid: nothing was sent (every reason)")}}}  # fmt: skip
    paths: JsonObject = {
        "/api/me": _get("Who the server takes you for", {"$ref": "#/components/schemas/Me"}),
        "/api/openapi.json": _get("This document", anything),
        "/api/inbox": _get("Requests, soonest deadline first, with SLA counts",
                           {"$ref": "#/components/schemas/InboxPage"}, *inbox_params),
        "/api/runs/{run_id}": _get("A run", anything, _RUN_ID),
        "/api/runs/{run_id}/requests/{interrupt_id}": _get(
            "One request card", {"$ref": "#/components/schemas/Card"}, _RUN_ID, _INTERRUPT_ID),
        "/api/runs/{run_id}/requests/{interrupt_id}/decision": decide,
        "/api/runs/{run_id}/decisions/{decision_id}": _get(
            "A decision's outcome (long-poll with wait; 202 while pending)", _OUTCOME, _RUN_ID,
            {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string"}},
            _WAIT),
        "/api/runs/{run_id}/timeline": _get("The run's events, summarised", rows, _RUN_ID),
        "/api/runs/{run_id}/audit": _get("The run's audit entries", rows, _RUN_ID),
        "/api/runs/{run_id}/verify": _get("The run's hash chain, log against projections",
                                          anything, _RUN_ID),
        "/api/stats": _get("Decision statistics", rows, {"name": "by", "in": "query",
                           "schema": {"enum": ["agent", "tool", "risk", "approver", "day"]}}),
        "/api/recommendations": _get("Policy recommendations from history", rows),
        "/api/events": {"get": {"summary": "Server-sent events: `inbox` changes as JSON "
                                "{kind, run_id, interrupt_id, status}",
                                "responses": {"200": {"description": "text/event-stream"},
                                              "401": _json(_ERROR, "not authenticated"),
                                              "503": _json(_ERROR, "too many open streams")}}},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "Countersign approvals", "version": "1"},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (OIDC)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "countersign_session"},
            },
        },
        "paths": paths,
    }
