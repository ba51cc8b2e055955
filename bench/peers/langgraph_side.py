"""LangGraph's side of the peer comparison: the same workload on its PostgreSQL checkpointer (I/O).

Configured as LangGraph's documentation says (docs/peers.md cites it): an
`AsyncPostgresSaver` over a psycopg `AsyncConnectionPool` whose connections have
`autocommit=True`, `prepare_threshold=0` and `row_factory=dict_row`; `setup()` once; the
human-in-the-loop pattern is `interrupt()` in a node and `Command(resume=...)` on the same
`thread_id`; `durability` is LangGraph's default ("async") unless a flag says otherwise.

The graph: `lookup_order` (one superstep per lookup, `steps` of them, each result appended to
the state as a tool result is), then `approval` (calls `interrupt()` for a refund over the
limit), then `refund` (runs the refund after "approve"), then END. The graph runs in this
process: a run has started when `ainvoke` returns with `__interrupt__`, and has resumed when
`ainvoke(Command(resume="approve"))` returns, its checkpoints written.
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")  # the package README's advice

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Durability, interrupt
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.peers.figures import Figures
from bench.peers.measure import measure
from bench.peers.storage import database_bytes, row_bytes
from bench.peers.workload import LIMIT, Counts, refund_input

SIDE = "langgraph"
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


class RefundState(TypedDict, total=False):
    order_id: str
    amount: float
    steps: int
    results: Annotated[list[dict[str, Any]], operator.add]
    decision: str
    refund: dict[str, Any] | None


async def lookup_order(state: RefundState) -> RefundState:
    order = {"order_id": state["order_id"], "customer": "c-42", "paid": 2400.0, "currency": "EUR"}
    return {"results": [order]}


def after_lookup(state: RefundState) -> str:
    return "lookup_order" if len(state.get("results", [])) < state["steps"] else "approval"


async def approval(state: RefundState) -> RefundState:
    if state["amount"] <= LIMIT:
        return {"decision": "approve"}
    request = {"tool": "refund", "args": {"order_id": state["order_id"], "amount": state["amount"]}}
    return {"decision": interrupt(request)}


async def refund(state: RefundState) -> RefundState:
    if state["decision"] != "approve":
        return {"refund": None}
    key = uuid.uuid4().hex
    return {"refund": {"refund_id": f"rf-{key}", "order_id": state["order_id"]}}


def build_graph() -> StateGraph[RefundState]:
    graph = StateGraph(RefundState)
    graph.add_node("lookup_order", lookup_order)
    graph.add_node("approval", approval)
    graph.add_node("refund", refund)
    graph.add_edge(START, "lookup_order")
    graph.add_conditional_edges("lookup_order", after_lookup, ["lookup_order", "approval"])
    graph.add_edge("approval", "refund")
    graph.add_edge("refund", END)
    return graph


class LangGraphSide:
    def __init__(self, compiled: Any, durability: Durability, concurrency: int) -> None:
        self.graph, self.durability = compiled, durability
        self.gate = asyncio.Semaphore(concurrency)

    def _config(self, thread_id: str, steps: int) -> dict[str, Any]:
        # Each lookup is a superstep: the default recursion limit (25) would stop a long run.
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 2 * steps + 10}

    async def start(self, thread_id: str, steps: int = 1) -> None:
        async with self.gate:
            out = await self.graph.ainvoke(
                refund_input(thread_id, steps),
                self._config(thread_id, steps),
                durability=self.durability,
            )
        if "__interrupt__" not in out:
            raise RuntimeError(f"run {thread_id} did not pause for approval: {out}")

    async def resume(self, thread_id: str, steps: int = 1) -> None:
        async with self.gate:
            out = await self.graph.ainvoke(
                Command(resume="approve"),
                self._config(thread_id, steps),
                durability=self.durability,
            )
        if not (out.get("refund") or {}).get("refund_id"):
            raise RuntimeError(f"run {thread_id} did not complete its refund: {out}")

    async def one_resume_ms(self, steps: int = 1) -> float:
        thread_id = f"one-{uuid.uuid4()}"
        await self.start(thread_id, steps)
        began = time.perf_counter()
        await self.resume(thread_id, steps)
        return (time.perf_counter() - began) * 1000

    async def throughput(self, runs: int) -> tuple[float, float]:
        thread_ids = [f"tp-{uuid.uuid4()}" for _ in range(runs)]
        began = time.perf_counter()
        await asyncio.gather(*(self.start(t) for t in thread_ids))
        started_s = time.perf_counter() - began
        began = time.perf_counter()
        await asyncio.gather(*(self.resume(t) for t in thread_ids))
        return runs / started_s, runs / (time.perf_counter() - began)


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    durability: Durability = "async"
    concurrency: int = 50
    """Graph invocations in flight at once in the throughput phases."""
    pool: int = 10
    """The connection pool's max_size."""
    unlocked: bool = False
    """Replace the saver's instance lock, which serialises every database operation of one
    saver even over a pool (langgraph#7259), by a semaphore of the pool's size: the
    workaround given in that issue, and what the open fix (langgraph#7269) does."""


async def run_side(url: str, counts: Counts, options: Options) -> Figures:
    async def storage() -> tuple[int, int]:
        return await database_bytes(url), await row_bytes(url, TABLES)

    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(url, max_size=options.pool, kwargs=kwargs) as pool:
        checkpointer = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await checkpointer.setup()
        if options.unlocked:
            checkpointer.lock = asyncio.Semaphore(options.pool)  # type: ignore[assignment]
        graph = build_graph().compile(checkpointer=checkpointer)
        side = LangGraphSide(graph, options.durability, options.concurrency)
        return await measure(SIDE, side, counts, storage)
