"""Collaborative: the agent proposes two or three options; the person picks one or writes their
own, as a typed `respond` answer.

    countersign worker --app examples.collaborative:app
    countersign start offsite --input '{"team": "support", "budget": 3000}' --by alice
    countersign decide RUN INTERRUPT respond --by alice --response '{"choice": "B"}'
    countersign decide RUN INTERRUPT respond --by alice \\
        --response '{"choice": "own", "text": "Picnic in the park"}'

The question's `answer_schema` is checked before a response is accepted: a choice that is not
offered, or "own" without text, is refused with the reason and the question stays open.
"""

from __future__ import annotations

from engine import App, RunContext
from events.json import Json, JsonObject

app = App("collaborative-example")

BOOKED: list[JsonObject] = []

ANSWER_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "choice": {"enum": ["A", "B", "C", "own"]},
        "text": {"type": "string", "minLength": 3},
    },
    "required": ["choice"],
    "additionalProperties": False,
}


@app.tool(idempotent=True)
async def propose_options(team: str, budget: float) -> Json:
    """Drafts options within the budget (a model would do this; here it is a fixed menu)."""
    menu: list[Json] = [
        {"id": "A", "plan": "Cooking class", "cost": 0.6 * budget},
        {"id": "B", "plan": "Escape room and dinner", "cost": 0.9 * budget},
        {"id": "C", "plan": "Hiking day", "cost": 0.3 * budget},
    ]
    return {"team": team, "options": menu}


@app.tool()
async def book(team: str, plan: str, idempotency_key: str) -> Json:
    BOOKED.append({"team": team, "plan": plan, "key": idempotency_key})
    return {"booking": f"bk-{idempotency_key}", "plan": plan}


@app.agent("offsite", version="1")
async def offsite_agent(ctx: RunContext, input: JsonObject) -> Json:
    team = str(input.get("team", "team"))
    budget = input.get("budget", 1000)
    assert isinstance(budget, int | float)
    proposal = await ctx.tool("propose_options", {"team": team, "budget": budget})
    if not isinstance(proposal.value, dict) or not isinstance(proposal.value["options"], list):
        return {"status": "no options", "reason": proposal.reason}
    options = proposal.value["options"]
    answer = await ctx.interrupt(
        f"Which offsite for {team}? Pick A, B or C, or write your own.",
        allowed=("respond", "reject"),
        context={"options": options},
        answer_schema=ANSWER_SCHEMA,
    )
    if answer.kind != "respond" or not isinstance(answer.response, dict):
        return {"status": "cancelled", "reason": answer.reason, "by": answer.decided_by}
    choice = answer.response["choice"]
    if choice == "own":
        plan = str(answer.response.get("text", ""))
    else:
        plan = next(str(o["plan"]) for o in options if isinstance(o, dict) and o["id"] == choice)
    booked = await ctx.tool("book", {"team": team, "plan": plan})
    return {
        "status": "booked",
        "plan": plan,
        "chosen_by": answer.decided_by,
        "booking": booked.value,
    }
