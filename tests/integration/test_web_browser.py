"""The web inbox in a real browser (Chromium driven by Playwright), on the embedded log and on
the local Kafka broker: a worker, a projector and the web server run in this process.

- log in, see a new request appear without reloading, approve it, watch the run complete;
- an invalid edit shows the error and sends nothing; a valid one shows the diff, and the run
  uses the new arguments;
- a question is answered with the form made from its answer schema;
- a user without the role sees the card read-only, and the server refuses a forged POST;
- the same request decided in two tabs: one decision is accepted, the other tab is told;
- an expired request cannot be decided.
Screenshots of the inbox and a card (desktop and phone width) go to the artifacts folder.
`test_web_browser_kafka.py` runs the same tests on the local Kafka broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser import artifact, chromium
from tests.web_stack import PASSWORD, Stack, fresh_stack

pytestmark = [pytest.mark.postgres]
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)  # the machine is shared and slow: wait, never sleep


@pytest.fixture(scope="module")
def log_address() -> str | None:
    """None: the embedded log (`test_web_browser_kafka.py` runs these tests on Kafka)."""
    return None


@pytest.fixture(scope="module")
async def stack(
    log_address: str | None, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with fresh_stack(pg_url, tmp_path_factory, "browser", log_address) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as found:
        yield found


OPEN: list[BrowserContext] = []
REQUESTED: list[str] = []


@pytest.fixture(autouse=True)
async def _close_contexts(stack: Stack) -> AsyncIterator[None]:
    """A failed test leaves no page open (its event stream would hold the server); every
    request the pages made went to the server itself (no CDN, no font, no beacon)."""
    REQUESTED.clear()
    yield
    while OPEN:
        await OPEN.pop().close()
    outside = [url for url in REQUESTED if not url.startswith(f"{stack.url}/")]
    assert outside == [], f"the pages asked another site: {outside[:5]}"


async def logged_in(browser: Browser, stack: Stack, user: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    OPEN.append(context)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("request", lambda request: REQUESTED.append(request.url))
    page = await context.new_page()
    await page.goto(f"{stack.url}/")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("me")).to_contain_text(user)
    return context, page


def card_url(stack: Stack, item: dict[str, object]) -> str:
    return f"{stack.url}/runs/{item['run_id']}/requests/{item['interrupt_id']}"


async def run_of(stack: Stack, run_id: str) -> dict[str, object]:
    async with stack.client("alice") as alice:
        found: dict[str, object] = (await alice.get(f"/api/runs/{run_id}")).json()
        return found


async def test_a_new_request_appears_live_and_an_approval_completes_the_run(
    browser: Browser, stack: Stack
) -> None:
    context, page = await logged_in(browser, stack, "alice")
    await page.evaluate("window.__sameDocument = true")
    run_id = await stack.start("refund", {"order_id": "L-1", "amount": 1200})
    item = page.locator("[data-testid=item][data-interrupt-id] >> text=L-1")
    await expect(item).to_be_visible()
    assert await page.evaluate("window.__sameDocument") is True  # no reload happened
    await page.screenshot(path=artifact("inbox.png"), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=artifact("inbox-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the inbox is {width}px wide on a 390px phone"
    await page.set_viewport_size({"width": 1000, "height": 900})
    focused = page.locator("#inbox-list a.item-link:focus")
    for _ in range(await page.locator("#inbox-list a.item-link").count()):
        await page.keyboard.press("j")  # keyboard: j/k move through the inbox, Enter opens
        if "L-1" in await focused.inner_text():
            break
    await expect(focused).to_contain_text("L-1")
    await page.keyboard.press("Enter")
    card = page.get_by_test_id("card")
    await expect(card).to_contain_text("the customer asked for 1200")
    await expect(page.get_by_test_id("deciders")).to_contain_text("role:support-lead")
    await page.screenshot(path=artifact("card.png"), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=artifact("card-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the card is {width}px wide on a 390px phone"
    await page.get_by_test_id("approve").focus()  # keyboard: the button takes focus and Enter
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("notice")).to_contain_text("Approved")
    await expect(page.get_by_test_id("run-status")).to_have_text("completed")
    await expect(page.get_by_test_id("outcome")).to_contain_text("alice")
    assert (await run_of(stack, run_id))["status"] == "completed"
    await page.goto(f"{stack.url}/runs/{run_id}")
    await expect(page.get_by_test_id("verify")).to_contain_text("Hash chain verified")
    await expect(page.get_by_test_id("timeline")).to_contain_text("RunCompleted")
    await context.close()


async def test_an_invalid_edit_sends_nothing_and_a_valid_one_shows_the_diff(
    browser: Browser, stack: Stack
) -> None:
    run_id = await stack.start("refund", {"order_id": "E-1", "amount": 3000})
    item = await stack.open_request(run_id)
    context, page = await logged_in(browser, stack, "alice")
    await page.goto(card_url(stack, item))
    await page.get_by_test_id("edit-open").click()
    amount = page.locator('[name="arg.amount"]')
    await amount.fill("lots")
    await page.get_by_test_id("edit-preview").click()
    await expect(page.get_by_test_id("edit-errors")).to_contain_text("amount")
    async with stack.client("alice") as alice:
        audit = (await alice.get(f"/api/runs/{run_id}/audit")).json()
    assert not [a for a in audit if a["action"].startswith("decision")], audit
    await amount.fill("2500")
    await page.get_by_test_id("edit-preview").click()
    diff = page.get_by_test_id("edit-diff")
    await expect(diff).to_contain_text("3000")
    await expect(diff).to_contain_text("2500")
    await page.get_by_test_id("edit-send").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("Edited")
    await expect(page.get_by_test_id("run-status")).to_have_text("completed")
    output = (await run_of(stack, run_id))["output"]
    assert output["args"] == {"order_id": "E-1", "amount": 2500}  # type: ignore[index]
    await context.close()


async def test_a_question_is_answered_with_the_form_made_from_its_answer_schema(
    browser: Browser, stack: Stack
) -> None:
    run_id = await stack.start("question", {"order_id": "Q-1"})
    item = await stack.open_request(run_id)
    context, page = await logged_in(browser, stack, "alice")
    await page.goto(card_url(stack, item))
    await expect(page.get_by_test_id("card")).to_contain_text("Which carrier should ship")
    carrier = page.locator('select[name="answer.carrier"]')
    assert await carrier.locator("option").all_inner_texts() == ["dhl", "ups"]  # the enum
    await carrier.select_option("ups")
    await page.locator('input[type=checkbox][name="answer.express"]').check()
    await page.get_by_test_id("respond").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("Answered")
    await expect(page.get_by_test_id("run-status")).to_have_text("completed")
    output = (await run_of(stack, run_id))["output"]
    assert output == {"answer": {"carrier": "ups", "express": True}}
    await context.close()


async def test_without_the_role_the_card_is_read_only_and_a_forged_post_is_refused(
    browser: Browser, stack: Stack
) -> None:
    run_id = await stack.start("refund", {"order_id": "R-1", "amount": 800})
    item = await stack.open_request(run_id)
    context, page = await logged_in(browser, stack, "dave")
    await page.goto(card_url(stack, item))
    await expect(page.get_by_test_id("readonly")).to_contain_text("role:support-lead")
    assert await page.get_by_test_id("approve").count() == 0
    csrf = await page.locator("input[name=csrf]").first.input_value()
    forged = await page.request.post(
        f"{card_url(stack, item)}/decide",
        form={"csrf": csrf, "kind": "approve", "idempotency_key": "f", "decided_by": "alice"},
    )
    assert forged.status == 403
    api = await page.request.post(
        f"{stack.url}/api/runs/{run_id}/requests/{item['interrupt_id']}/decision",
        data={"kind": "approve"},
        headers={"Idempotency-Key": "f2", "X-CSRF-Token": csrf},
    )
    assert api.status == 403
    assert (await run_of(stack, run_id))["status"] == "waiting"
    await context.close()


async def test_two_tabs_decide_once_and_the_second_is_told(browser: Browser, stack: Stack) -> None:
    """The second tab hears nothing live (its event stream cut, as on a bad network), so it
    still shows the request open when its person clicks: the server tells them."""
    run_id = await stack.start("refund", {"order_id": "T-1", "amount": 650})
    item = await stack.open_request(run_id)
    context, first = await logged_in(browser, stack, "alice")
    second = await context.new_page()
    await second.route("**/api/events", lambda route: route.abort())
    for page in (first, second):
        await page.goto(card_url(stack, item))
        await expect(page.get_by_test_id("approve")).to_be_visible()
    await first.get_by_test_id("approve").click()
    await expect(first.get_by_test_id("notice")).to_contain_text("Approved")
    await second.get_by_test_id("reject-reason").fill("too much")
    await second.get_by_test_id("reject").click()
    await expect(second.get_by_test_id("notice")).to_contain_text("already")
    await expect(second.get_by_test_id("outcome")).to_contain_text("alice")
    async with stack.client("alice") as alice:
        audit = (await alice.get(f"/api/runs/{run_id}/audit")).json()
    accepted = [a for a in audit if a["action"] == "decision_accepted"]
    assert [a["kind"] for a in accepted] == ["approve"]
    await context.close()


async def test_an_expired_request_cannot_be_decided(browser: Browser, stack: Stack) -> None:
    run_id = await stack.start("closing", {"account": "acc-1"})
    item = await stack.open_request(run_id)
    context, page = await logged_in(browser, stack, "alice")
    await page.goto(card_url(stack, item))
    csrf = await page.locator("input[name=csrf]").first.input_value()
    await expect(page.get_by_test_id("status")).to_have_text("expired")  # no reload by hand
    assert await page.get_by_test_id("approve").count() == 0
    late = await page.request.post(
        f"{card_url(stack, item)}/decide",
        form={"csrf": csrf, "kind": "approve", "idempotency_key": "late"},
    )
    assert late.status == 409
    assert "expired" in await late.text()
    await context.close()
