"""The web API on the embedded log: a worker, a projector and `countersign serve` in one process.

Who may call what (every route but health, static and the login form needs a login), the
inbox and its filters, a card, decisions with an Idempotency-Key, refusals before anything
is sent (invalid edit, forged principal, no role, closed, expired), two decisions racing,
the long-poll for an outcome, server-sent events, and the OpenAPI document against the routes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import Mount, Route

from countersign.web.app import application
from tests.helpers import eventually
from tests.web_stack import Stack, fresh_stack

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
async def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with fresh_stack(pg_url, tmp_path_factory, "web") as running:
        yield running


def decision_url(item: dict[str, object]) -> str:
    return f"/api/runs/{item['run_id']}/requests/{item['interrupt_id']}/decision"


async def test_no_route_answers_without_a_login_but_health_static_and_the_login_form(
    stack: Stack,
) -> None:
    app = application(stack.served.web)
    open_paths = {"/health", "/login"}
    async with httpx.AsyncClient(base_url=stack.url) as anonymous:
        for route in app.routes:
            if isinstance(route, Mount):
                shown = await anonymous.get("/static/inbox.css")
                assert shown.status_code == 200
                continue
            assert isinstance(route, Route)
            path = route.path.replace("{run_id}", "r").replace("{interrupt_id}", "i")
            path = path.replace("{decision_id}", "d")
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                answer = await anonymous.request(method, path, headers={"Accept": "text/html"})
                if route.path in open_paths:
                    assert answer.status_code < 400 or method == "POST", (method, path)
                elif path.startswith("/api/"):
                    assert answer.status_code == 401, (method, path, answer.status_code)
                else:
                    assert answer.status_code in (303, 401), (method, path, answer.status_code)
        forged = await anonymous.get("/api/inbox", headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401
        assert "bearer tokens are not accepted" in forged.json()["error"]


async def test_wrong_password_and_forged_login_form_are_refused(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as client:
        await client.get("/login")
        no_token = await client.post("/login", data={"username": "alice", "password": "x"})
        assert no_token.status_code == 403
        from tests.web_stack import login

        wrong = await login(client, "alice", "not the password")
        assert wrong.status_code == 401
        assert "countersign_session" not in client.cookies


async def test_an_approval_through_the_api_resumes_the_run(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "A-1", "amount": 900})
    item = await stack.open_request(run_id)
    assert item["sla"] == "on_time"
    assert item["what"]["tool"] == "refund"
    async with stack.client("alice") as alice:
        card = (await alice.get(f"/api/runs/{run_id}/requests/{item['interrupt_id']}")).json()
        assert card["you_may_decide"] is True
        assert card["digest"]
        assert card["request"]["args_schema"]["required"]
        headers = {"Idempotency-Key": "approve-1"}
        body = {"kind": "approve", "reason": "checked", "digest": card["digest"]}
        first = await alice.post(decision_url(item), json=body, headers=headers,
                                 params={"wait": 30})  # fmt: skip
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted"
        assert first.json()["decided_by"] == "alice"
        again = await alice.post(decision_url(item), json=body, headers=headers,
                                 params={"wait": 30})  # fmt: skip
        assert again.json()["decision_id"] == first.json()["decision_id"]
        assert again.json()["status"] == "accepted"
        reused = await alice.post(decision_url(item), json={**body, "reason": "other"},
                                  headers=headers, params={"wait": 5})  # fmt: skip
        assert reused.status_code == 422
        assert "Idempotency-Key" in reused.json()["error"]

        async def completed() -> bool:
            run = (await alice.get(f"/api/runs/{run_id}")).json()
            return bool(run["status"] == "completed")

        await eventually(completed, timeout=60, interval=0.2)
        audit = (await alice.get(f"/api/runs/{run_id}/audit")).json()
        accepted = [a for a in audit if a["action"] == "decision_accepted"]
        assert [a["actor"] for a in accepted] == ["alice"]
        verdict = (await alice.get(f"/api/runs/{run_id}/verify")).json()
        assert verdict["ok"] is True
        timeline = (await alice.get(f"/api/runs/{run_id}/timeline")).json()
        assert timeline[-1]["type"] == "RunCompleted"


async def test_refusals_before_anything_is_sent(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "A-2", "amount": 700})
    item = await stack.open_request(run_id)
    url = decision_url(item)
    async with stack.client("alice") as alice, stack.client("dave") as dave:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        cases = [
            ({"kind": "approve", "decided_by": "erin"}, "decided_by is not yours"),
            ({"kind": "edit", "args": {"order_id": "A-2", "amount": "lots"}}, "amount must be"),
            ({"kind": "edit", "args": {"order_id": "A-2", "amount": 1, "x": 2}}, "x is not"),
            ({"kind": "reject"}, "needs a reason"),
            ({"kind": "respond", "response": "hi"}, "does not allow respond"),
            ({"kind": "fly"}, "kind must be one of"),
            ([1, 2], "must be a JSON object"),
        ]
        for body, expected in cases:
            refused = await alice.post(url, json=body, headers=key)
            assert refused.status_code == 422, (body, refused.text)
            assert expected in refused.text, (body, refused.text)
        no_key = await alice.post(url, json={"kind": "approve"})
        assert no_key.status_code == 422
        assert "Idempotency-Key" in no_key.text
        as_form = await alice.post(url, data={"kind": "approve"}, headers=key)
        assert as_form.status_code == 415
        cross = await alice.post(url, json={"kind": "approve"},
                                 headers={**key, "Origin": "https://evil.example"})  # fmt: skip
        assert cross.status_code == 403
        no_role = await dave.post(url, json={"kind": "approve"}, headers=key)
        assert no_role.status_code == 403
        assert "role:support-lead" in no_role.json()["error"]
        card = (await dave.get(f"/api/runs/{run_id}/requests/{item['interrupt_id']}")).json()
        assert card["you_may_decide"] is False
    async with stack.client("bob") as bob:  # bob started the run: separation of duties
        own = await bob.post(url, json={"kind": "approve"}, headers=key)
        assert own.status_code == 403
    async with stack.client("alice") as alice:
        run = (await alice.get(f"/api/runs/{run_id}")).json()
        assert run["status"] == "waiting"
        audit = (await alice.get(f"/api/runs/{run_id}/audit")).json()
        assert not [a for a in audit if a["action"].startswith("decision")]


async def test_an_edit_runs_with_the_new_arguments(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "A-3", "amount": 2000})
    item = await stack.open_request(run_id)
    async with stack.client("alice") as alice:
        edited = await alice.post(
            decision_url(item), params={"wait": 30}, headers={"Idempotency-Key": "e1"},
            json={"kind": "edit", "args": {"order_id": "A-3", "amount": 1500}, "reason": "cap"},
        )  # fmt: skip
        assert edited.status_code == 200
        assert edited.json()["status"] == "accepted"

        async def output() -> dict[str, object] | None:
            run = (await alice.get(f"/api/runs/{run_id}")).json()
            return run["output"] if run["status"] == "completed" else None  # type: ignore[no-any-return]

        done = await eventually(output, timeout=60, interval=0.2)
        assert done["args"] == {"order_id": "A-3", "amount": 1500}


async def test_two_decisions_race_one_is_accepted_the_other_told(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "A-4", "amount": 800})
    item = await stack.open_request(run_id)
    async with stack.client("alice") as alice, stack.client("erin") as erin:
        answers = await asyncio.gather(
            alice.post(decision_url(item), json={"kind": "approve"},
                       headers={"Idempotency-Key": "a"}, params={"wait": 30}),
            erin.post(decision_url(item), json={"kind": "reject", "reason": "no"},
                      headers={"Idempotency-Key": "b"}, params={"wait": 30}),
        )  # fmt: skip
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409).json()
    assert "already decided" in loser["error"], loser


async def test_the_outcome_can_be_waited_for_and_events_tell_the_pages(stack: Stack) -> None:
    async with stack.client("alice") as alice:
        heard: list[dict[str, str]] = []

        async def listen() -> None:
            async with alice.stream("GET", "/api/events") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        heard.append(json.loads(line[6:]))

        listener = asyncio.create_task(listen())
        try:
            run_id = await stack.start("refund", {"order_id": "A-5", "amount": 600})
            item = await stack.open_request(run_id)
            await eventually(
                lambda: any(h["run_id"] == run_id and h["kind"] == "raised" for h in heard),
                timeout=30,
            )
            key = {"Idempotency-Key": "w"}
            sent = await alice.post(
                decision_url(item), json={"kind": "approve"}, headers=key, params={"wait": 0}
            )
            assert sent.status_code in (200, 202)
            decision_id = sent.json()["decision_id"]
            waited = await alice.get(f"/api/runs/{run_id}/decisions/{decision_id}",
                                     params={"wait": 30})  # fmt: skip
            assert waited.status_code == 200
            assert waited.json()["status"] == "accepted"
            await eventually(
                lambda: any(h["run_id"] == run_id and h["kind"] == "decided" for h in heard),
                timeout=30,
            )
            await eventually(
                lambda: any(h["kind"] == "run" and h["status"] == "completed" for h in heard),
                timeout=60,
            )
            unknown = await alice.get(f"/api/runs/{run_id}/decisions/{uuid.uuid4()}")
            assert unknown.status_code == 202
        finally:
            listener.cancel()


async def test_an_expired_request_cannot_be_decided(stack: Stack) -> None:
    run_id = await stack.start("closing", {"account": "acc-9"})
    item = await stack.open_request(run_id)
    async with stack.client("alice") as alice:

        async def expired() -> bool:
            card = (await alice.get(f"/api/runs/{run_id}/requests/{item['interrupt_id']}")).json()
            return bool(card["status"] == "expired")

        await eventually(expired, timeout=60, interval=0.3)
        late = await alice.post(decision_url(item), json={"kind": "approve"},
                                headers={"Idempotency-Key": "late"})  # fmt: skip
        assert late.status_code == 409
        assert "expired" in late.json()["error"]


async def test_inbox_filters_and_bounds(stack: Stack) -> None:
    await stack.open_request(await stack.start("refund", {"order_id": "F-1", "amount": 990}))
    async with stack.client("alice") as alice, stack.client("carol") as carol:
        mine = (await alice.get("/api/inbox", params={"mine": "1", "tool": "refund"})).json()
        assert mine["items"]
        assert all(i["what"]["tool"] == "refund" for i in mine["items"])
        theirs = (await carol.get("/api/inbox", params={"mine": "1", "tool": "refund"})).json()
        assert theirs["items"] == []
        deadlines = [i["deadline"] for i in mine["items"]]
        assert deadlines == sorted(deadlines)
        on_time = (await alice.get("/api/inbox", params={"sla": "on_time"})).json()
        assert on_time["total"] == on_time["counts"]["on_time"]
        by_agent = (await alice.get("/api/inbox", params={"agent": "refund"})).json()
        assert by_agent["items"]
        assert {i["agent"] for i in by_agent["items"]} == {"refund"}
        assert (await alice.get("/api/inbox", params={"agent": "nobody"})).json()["items"] == []
        decided = await stack.open_request(
            await stack.start("refund", {"order_id": "F-2", "amount": 600})
        )
        sent = await alice.post(decision_url(decided), json={"kind": "approve"},
                                headers={"Idempotency-Key": "f2"}, params={"wait": 30})  # fmt: skip
        assert sent.json()["status"] == "accepted"

        async def closed() -> list[dict[str, object]]:
            page = await alice.get("/api/inbox", params={"status": "closed", "limit": 1000})
            return [i for i in page.json()["items"] if i["run_id"] == decided["run_id"]]

        [shown] = await eventually(closed, timeout=60, interval=0.2)
        assert shown["status"] == "approved"
        still_open = (await alice.get("/api/inbox", params={"limit": 1000})).json()["items"]
        assert decided["run_id"] not in {i["run_id"] for i in still_open}
        for bad in ({"limit": "0"}, {"limit": "x"}, {"sla": "soon"}, {"status": "maybe"},
                    {"tool": "t" * 500}, {"status": "closed", "sla": "overdue"}):  # fmt: skip
            assert (await alice.get("/api/inbox", params=bad)).status_code == 400, bad


async def test_the_openapi_document_and_the_routes_agree(stack: Stack) -> None:
    app = application(stack.served.web)
    served = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    async with stack.client("alice") as alice:
        document = (await alice.get("/api/openapi.json")).json()
    assert set(document["paths"]) == served
    assert document["openapi"].startswith("3.")


async def test_stats_and_recommendations_come_from_the_projections(stack: Stack) -> None:
    async with stack.client("alice") as alice:
        await stack.open_request(await stack.start("refund", {"order_id": "S-1", "amount": 801}))
        by_tool = await alice.get("/api/stats", params={"by": "tool"})
        assert by_tool.status_code == 200
        assert "refund" in {row["key"] for row in by_tool.json()}
        assert (await alice.get("/api/stats", params={"by": "color"})).status_code == 400
        advice = await alice.get("/api/recommendations")
        assert advice.status_code == 200
        assert isinstance(advice.json(), list)
