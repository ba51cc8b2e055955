"""The web server against hostile and careless callers, on the embedded log: every state-changing
route refuses a request without the caller's CSRF token; cookies are HttpOnly, SameSite=Strict
and Secure over https; huge bodies, deep or non-standard JSON, wrong content types and forged
principal fields get a clear 4xx and send nothing; an Idempotency-Key decides once (one
command on the topic, however often and however concurrently it is sent) and refuses another
body; the pages link nothing outside the server; the OpenAPI document describes every route
and method; event streams are bounded; password guessing is paused; a page form naming
someone else decides as the caller (the API refuses unknown fields; a form's extra fields
are never read)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import Route

from countersign.web.app import application
from countersign.web.context import MAX_BODY_BYTES
from events.commands import SubmitDecision
from tests.web_stack import Stack, fresh_stack, login

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
async def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with fresh_stack(pg_url, tmp_path_factory, "hostile") as running:
        yield running


@pytest.fixture(scope="module")
async def request_item(stack: Stack) -> dict[str, object]:
    """One open refund request the tests here try to decide (most of them must fail)."""
    run_id = await stack.start("refund", {"order_id": "H-1", "amount": 900})
    return await stack.open_request(run_id)


def paths(route: Route, item: dict[str, object]) -> str:
    return (
        route.path.replace("{run_id}", str(item["run_id"]))
        .replace("{interrupt_id}", str(item["interrupt_id"]))
        .replace("{decision_id}", "d")
    )


async def decisions_of(stack: Stack, run_id: str) -> list[SubmitDecision]:
    found = [stack.runtime.codec.decode_command(r.value) for r in await stack.commands(run_id)]
    return [c for c in found if isinstance(c, SubmitDecision)]


async def test_every_state_changing_route_needs_the_callers_csrf_token(
    stack: Stack, request_item: dict[str, object]
) -> None:
    posts = [
        r
        for r in application(stack.served.web).routes
        if isinstance(r, Route) and "POST" in (r.methods or ())
    ]
    assert len(posts) >= 5  # login, logout, decide, preview, the API's decision
    async with stack.client("alice") as alice, stack.client("erin") as erin:
        others = erin.headers["X-CSRF-Token"]
        del alice.headers["X-CSRF-Token"]
        for route in posts:
            path = paths(route, request_item)
            body = {"kind": "reject", "reason": "forged", "idempotency_key": "k"}
            if path.startswith("/api/"):
                for token in (None, others, "0" * 64):
                    headers = {"Idempotency-Key": "k", **({"X-CSRF-Token": token} if token else {})}
                    answer = await alice.post(path, json=body, headers=headers)
                    assert answer.status_code == 403, (path, token, answer.text)
                continue
            for form in (body, {**body, "csrf": others}, {**body, "csrf": ""}):
                answer = await alice.post(path, data=form)
                assert answer.status_code == 403, (path, form, answer.text)
        assert (await alice.get("/api/me")).status_code == 200  # still logged in: no logout
    assert await decisions_of(stack, str(request_item["run_id"])) == []


async def test_cookies_are_http_only_same_site_strict_and_secure_over_https(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as plain:
        await login(plain, "alice")
        assert_cookie(plain, secure=False)
    app = application(stack.served.web)
    over_https = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://inbox")
    async with over_https:
        answer = await login(over_https, "alice")
        assert answer.status_code == 303, answer.text
        assert_cookie(over_https, secure=True)


def assert_cookie(client: httpx.AsyncClient, *, secure: bool) -> None:
    [session] = [c for c in client.cookies.jar if c.name == "countersign_session"]
    assert session.secure is secure
    assert session.has_nonstandard_attr("HttpOnly")
    assert session.get_nonstandard_attr("SameSite", "").lower() == "strict"


async def test_hostile_bodies_get_a_clear_refusal_and_send_nothing(
    stack: Stack, request_item: dict[str, object]
) -> None:
    url = f"/api/runs/{request_item['run_id']}/requests/{request_item['interrupt_id']}/decision"
    json_type = {"Content-Type": "application/json", "Idempotency-Key": "h"}
    nested = "[" * 5_000 + "]" * 5_000

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(MAX_BODY_BYTES // 65_536 + 2):
            yield b" " * 65_536

    async with stack.client("alice") as alice:
        cases: list[tuple[dict[str, str], bytes | AsyncIterator[bytes], int, str]] = [
            (json_type, b" " * (MAX_BODY_BYTES + 1), 413, "at most"),
            (json_type, chunks(), 413, "at most"),
            (json_type, nested.encode(), 400, "deeper than"),
            (json_type, b'{"kind": "approve", "reason": NaN}', 400, "NaN"),
            (json_type, b'{"kind": "approve"', 400, "not JSON"),
            (json_type, b"\xff\xfe\x00", 400, "not JSON"),
            (
                {**json_type, "Content-Type": "text/plain"},
                b'{"kind": "approve"}',
                415,
                "application/json",
            ),
            ({"Idempotency-Key": "h"}, b'{"kind": "approve"}', 415, "application/json"),
            ({**json_type, "Idempotency-Key": "k" * 500}, b'{"kind": "approve"}', 422, "Key"),
        ]
        for field in ("decided_by", "principal", "roles", "actor"):
            forged = f'{{"kind": "approve", "{field}": "erin"}}'.encode()
            cases.append((json_type, forged, 422, field))
        for headers, content, status, says in cases:
            answer = await alice.post(url, content=content, headers=headers)
            assert answer.status_code == status, (headers, answer.text[:300])
            assert says in answer.json()["error"], answer.text[:300]
        for wait in ("1e9", "-1", "nan", "soon"):
            waited = await alice.post(url, json={"kind": "approve"}, params={"wait": wait},
                                      headers={"Idempotency-Key": "w"})  # fmt: skip
            assert waited.status_code == 400, (wait, waited.text)
            assert "wait must" in waited.json()["error"]
        page = url.removeprefix("/api").removesuffix("/decision") + "/decide"
        csrf = alice.headers["X-CSRF-Token"]
        deep = await alice.post(page, data={"csrf": csrf, "kind": "edit", "args_json": nested})
        assert deep.status_code == 422
        assert "deeper than" in deep.text
        huge = await alice.post(page, data={"csrf": csrf, "reason": "x" * MAX_BODY_BYTES})
        assert huge.status_code == 413
    assert await decisions_of(stack, str(request_item["run_id"])) == []


async def test_an_idempotency_key_decides_once_and_refuses_another_body(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "H-2", "amount": 700})
    item = await stack.open_request(run_id)
    url = f"/api/runs/{run_id}/requests/{item['interrupt_id']}/decision"
    body = {"kind": "approve", "reason": "once"}
    key = {"Idempotency-Key": "only-once"}
    async with stack.client("alice") as alice:
        together = await asyncio.gather(
            *(alice.post(url, json=body, headers=key, params={"wait": 30}) for _ in range(3))
        )
        later = await alice.post(url, json=body, headers=key, params={"wait": 30})
        other = await alice.post(url, json={**body, "reason": "twice"}, headers=key)
    answers = [*together, later]
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert {a.json()["status"] for a in answers} == {"accepted"}
    assert other.status_code == 422
    assert "Idempotency-Key was used for another decision" in other.json()["error"]
    sent = await decisions_of(stack, run_id)
    assert [(d.decision_id, d.decided_by) for d in sent] == [
        (answers[0].json()["decision_id"], "alice")
    ]


async def test_pages_link_nothing_outside_the_server(
    stack: Stack, request_item: dict[str, object]
) -> None:
    run_id, interrupt_id = request_item["run_id"], request_item["interrupt_id"]
    async with stack.client("alice") as alice:
        for path in ("/", "/login", f"/runs/{run_id}", f"/runs/{run_id}/requests/{interrupt_id}"):
            page = await alice.get(path)
            assert page.status_code == 200, path
            links = re.findall(r'(?:src|href|action|hx-get|hx-post)="([^"]*)"', page.text)
            assert links, path
            outside = [link for link in links if not link.startswith(("/", "#", "?"))]
            assert outside == [], (path, outside)
            assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_the_openapi_document_describes_every_route_and_method(stack: Stack) -> None:
    async with stack.client("alice") as alice:
        document = (await alice.get("/api/openapi.json")).json()
    for route in application(stack.served.web).routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        described = document["paths"][route.path]
        assert set(described) == {m.lower() for m in route.methods or ()} - {"head"}
        for method, operation in described.items():
            assert operation["summary"], (route.path, method)
            assert operation["responses"], (route.path, method)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", route.path)), (route.path, method)


async def test_event_streams_are_bounded(stack: Stack) -> None:
    live = stack.served.web.service.live
    async with stack.client("alice") as alice, stack.client("erin") as erin:
        before, live.max_streams = live.max_streams, 1
        try:
            async with alice.stream("GET", "/api/events") as first:
                async for line in first.aiter_lines():
                    assert line.startswith("retry:")  # subscribed
                    break
                refused = await erin.get("/api/events")
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "30"
        finally:
            live.max_streams = before


async def test_guessing_a_password_is_paused_after_five_wrong_ones(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as guesser:
        for n in range(5):
            assert (await login(guesser, "carol", f"guess {n}")).status_code == 401
        right = await login(guesser, "carol")
        assert right.status_code == 429
        assert "too many tries" in right.text
        assert "countersign_session" not in guesser.cookies


async def test_a_page_form_naming_someone_else_decides_as_the_caller(stack: Stack) -> None:
    run_id = await stack.start("refund", {"order_id": "H-3", "amount": 700})
    item = await stack.open_request(run_id)
    async with stack.client("alice") as alice:
        form = {"csrf": alice.headers["X-CSRF-Token"], "kind": "approve", "idempotency_key": "p",
                "decided_by": "erin", "principal": "erin", "roles": "admin"}  # fmt: skip
        page = await alice.post(f"/runs/{run_id}/requests/{item['interrupt_id']}/decide", data=form)
        assert page.status_code == 200, page.text[:300]
    [sent] = await decisions_of(stack, run_id)
    assert sent.decided_by == "alice"
