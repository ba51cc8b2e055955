"""The code of docs/approvals.md runs, and does what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from events.run_events import GateEvaluated
from tests.unit.approvals_sim import Sim

DOC = Path(__file__).resolve().parents[2] / "docs" / "approvals.md"


@pytest.fixture(scope="module")
def page() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "the page has no Python blocks"
    namespace: dict[str, Any] = {"__name__": "approvals_doc"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


def test_a_refund_over_the_limit_asks_a_support_lead(page: dict[str, Any]) -> None:
    sim = Sim(page["app"], "refund", {"order_id": "A-17", "amount": 2400}, requested_by="alice")

    raised = sim.only_open()
    assert (raised.request.policy, raised.request.approvers) == (
        "refund-limit@2",
        ("role:support-lead",),
    )
    assert not sim.decide(raised.interrupt_id, "approve", "bob").accepted
    sim.decide(
        raised.interrupt_id, "edit", "lena", edited_args={"order_id": "A-17", "amount": 1200}
    )

    assert sim.output["ran_with"] == {"order_id": "A-17", "amount": 1200}  # type: ignore[index, call-overload]


def test_a_refund_over_the_hard_limit_needs_two_of_support_then_the_cfo(
    page: dict[str, Any],
) -> None:
    sim = Sim(page["app"], "refund", {"order_id": "A-17", "amount": 25_000}, requested_by="alice")

    [evaluated] = sim.of_type(GateEvaluated)
    assert (evaluated.policy, evaluated.risk) == ("hard-limit@1", "critical")
    first = sim.only_open()
    sim.decide(first.interrupt_id, "approve", "bob")
    assert sim.decide(first.interrupt_id, "approve", "bob").reason.startswith(
        "bob already approved"
    )
    sim.decide(first.interrupt_id, "approve", "carol")
    second = sim.only_open()
    sim.decide(second.interrupt_id, "approve", "erin")

    assert sim.output["status"] == "refunded"  # type: ignore[index, call-overload]


def test_a_rejection_reaches_the_agent(page: dict[str, Any]) -> None:
    sim = Sim(page["app"], "refund", {"order_id": "A-17", "amount": 2400}, requested_by="alice")

    sim.decide(sim.only_open().interrupt_id, "reject", "lena", reason="not eligible")

    assert sim.output == {"status": "not refunded", "why": "not eligible", "by": "lena"}
