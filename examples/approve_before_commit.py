"""Approve before commit: dry-run the plan, ask for one approval of the change preview, then
execute exactly what was previewed.

    countersign worker --app examples.approve_before_commit:app
    countersign start price-update --input '{"sku_prefix": "TEA-", "percent": 5}' --by alice
    countersign decide RUN INTERRUPT approve --by bob --digest <the request's digest>

The dry run is read-only (idempotent, no policy). The real `apply_changes` is gated by
`Always`; its arguments include the preview's fingerprint, so the request's digest — which a
decision names — covers exactly the changes that were shown, and nothing else can run.
"""

from __future__ import annotations

from engine import Always, App, RunContext
from events.json import Json, JsonObject, digest

app = App("approve-before-commit-example")

CATALOG: dict[str, float] = {"TEA-1": 4.0, "TEA-2": 6.5, "COF-1": 9.0}
APPLIED: list[JsonObject] = []


def _changes(sku_prefix: str, percent: float) -> list[Json]:
    return [
        {"sku": sku, "from": price, "to": round(price * (1 + percent / 100), 2)}
        for sku, price in sorted(CATALOG.items())
        if sku.startswith(sku_prefix)
    ]


@app.tool(idempotent=True)
async def preview_changes(sku_prefix: str, percent: float) -> Json:
    """Dry run: computes the changes and their fingerprint, changes nothing."""
    changes = _changes(sku_prefix, percent)
    return {"changes": changes, "fingerprint": digest(changes), "count": len(changes)}


@app.tool(
    policy=Always(
        name="commit-changes",
        version="1",
        risk="high",
        reason="price changes go live for every customer",
        allowed=("approve", "reject"),
    )
)
async def apply_changes(changes: list[Json], fingerprint: str, idempotency_key: str) -> Json:
    """Commits the previewed changes; refuses if they are not the previewed ones."""
    if digest(changes) != fingerprint:
        raise ValueError("the changes differ from the approved preview")
    APPLIED.append({"changes": changes, "key": idempotency_key})
    return {"applied": len(changes)}


@app.agent("price-update", version="1")
async def price_update(ctx: RunContext, input: JsonObject) -> Json:
    percent = input.get("percent", 0)
    assert isinstance(percent, int | float)
    preview = await ctx.tool(
        "preview_changes", {"sku_prefix": input.get("sku_prefix", ""), "percent": percent}
    )
    if not preview.ok or not isinstance(preview.value, dict):
        return {"status": "preview failed", "reason": preview.reason}
    if not preview.value["changes"]:
        return {"status": "nothing to change"}
    committed = await ctx.tool(
        "apply_changes",
        {"changes": preview.value["changes"], "fingerprint": preview.value["fingerprint"]},
        reasoning=f"raise prices by {percent}% as asked",
        impact=f"{preview.value['count']} prices change for every customer",
        context={"preview": preview.value["changes"]},
    )
    if not committed.ok:
        return {"status": "not applied", "reason": committed.reason, "by": committed.decided_by}
    return {"status": "applied", "result": committed.value, "approved_by": committed.decided_by}
