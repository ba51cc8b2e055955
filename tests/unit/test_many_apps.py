"""One worker, many agents: an app that includes others serves their agents and tools, each
app keeping its own guards and directory; clashing names are refused when apps are joined."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from engine import Always, App, ConfigurationError, RunContext
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.json import Json, JsonObject
from events.run_events import InterruptRaised, RunCompleted
from tests.approvals_harness import Clock, Harness


def _shop() -> App:
    shop = App("shop", directory={"bob": ["lead"]})
    shop.guard("*", Always(name="shop-guard", approvers=("role:lead",)))

    @shop.tool()
    async def refund(amount: float) -> Json:
        return {"refunded": amount}

    @shop.agent("refunder")
    async def refunder(ctx: RunContext, input: JsonObject) -> Json:
        result = await ctx.tool("refund", {"amount": 5.0})
        return {"status": result.status, "by": result.decided_by}

    return shop


def _mail() -> App:
    mail = App("mail", directory={"bob": []})  # bob holds no role here

    @mail.tool()
    async def send(to: str) -> Json:
        return {"sent": to}

    @mail.agent("mailer")
    async def mailer(ctx: RunContext, input: JsonObject) -> Json:
        result = await ctx.tool("send", {"to": "ann@example.com"})
        return {"status": result.status, "by": result.decided_by}

    return mail


def test_an_app_serves_the_agents_and_tools_of_the_apps_it_includes() -> None:
    shop, mail = _shop(), _mail()
    both = App("both", include=(shop, mail))

    refunder, mailer = both.find_agent("refunder"), both.find_agent("mailer")
    assert refunder is not None
    assert mailer is not None
    assert both.owner_of("refunder") is shop
    assert both.owner_of("mailer") is mail
    assert both.directory_for("refunder") == {"bob": ["lead"]}
    assert both.get_tool("send") is mail.get_tool("send")
    assert sorted(t.name for t in both.tools) == ["refund", "send"]
    assert sorted(a.name for a in both.agents) == ["mailer", "refunder"]
    assert both.find_agent("nobody") is None
    nested = App("nested", include=(App("middle", include=(mail,)),))
    assert nested.owner_of("mailer") is mail


@pytest.mark.parametrize(
    ("second", "clash"),
    [
        (_shop, "both have agent 'refunder', tool 'refund'"),
        (lambda: _renamed_tool_clash(), "both have tool 'refund'"),
    ],
    ids=["agent-and-tool", "tool"],
)
def test_clashing_names_are_refused_when_apps_are_joined(
    second: Callable[[], App], clash: str
) -> None:
    with pytest.raises(ConfigurationError, match=clash):
        App("both", include=(_shop(), second()))


def _renamed_tool_clash() -> App:
    other = App("other")

    @other.tool("refund")
    async def another_refund(amount: float) -> Json:
        return None

    return other


def test_an_app_is_included_once() -> None:
    shop = _shop()
    with pytest.raises(ConfigurationError, match="included twice"):
        App("both", include=(shop, shop))


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("many")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


async def test_one_worker_runs_each_agent_under_its_own_apps_rules(h: Harness) -> None:
    await h.start_worker(App("both", include=(_shop(), _mail())), Clock())
    refund_run = await h.publisher.start_run("refunder", {}, requested_by="alice")
    mail_run = await h.publisher.start_run("mailer", {}, requested_by="alice")

    # The shop's guard asks a lead; it does not reach the mail app's tool.
    [raised] = await h.open_interrupts(refund_run, 1)
    assert raised.request.approvers == ("role:lead",)
    mailed = await h.wait_for(mail_run, lambda p: isinstance(p[-1], RunCompleted), "mail sent")
    assert not any(isinstance(p, InterruptRaised) for p in mailed)

    # The shop's directory makes bob a lead for the shop's runs.
    await h.publisher.submit_decision(refund_run, raised.interrupt_id, "approve", decided_by="bob")
    payloads = await h.wait_for(refund_run, lambda p: isinstance(p[-1], RunCompleted), "done")
    done = payloads[-1]
    assert isinstance(done, RunCompleted)
    assert done.output == {"status": "ok", "by": "bob"}
