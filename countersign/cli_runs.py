"""`countersign start | decide | cancel`: publish commands, as any other system would.

`decide` waits for the decision's outcome by default (`--no-wait` only publishes) and exits
non-zero unless the decision was accepted (or counted towards a quorum).
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from countersign import bootstrap, cli_queries, cli_review
from countersign.cli_options import wait_option
from countersign.decision_input import json_object
from countersign.render import clean
from countersign.settings import Settings

START_PATIENCE_S = 15.0
"""How long `start` looks for a worker serving the agent (one started a moment ago)."""


def register(commands: Any) -> None:
    start = commands.add_parser("start", help="start a run (publishes StartRun; prints the run id)")
    start.add_argument("agent", help="agent name, e.g. refund")
    start.add_argument("--input", default="{}", help="run input as a JSON object")
    start.add_argument("--by", default=None, help="who asks for the run (default: $USER)")
    start.add_argument("--run-id", default=None, help="choose the run id (default: a new uuid)")
    start.add_argument("--agent-version", default="", help="pin a version (default: newest)")
    start.add_argument(
        "--force",
        action="store_true",
        help="send it even if no worker has registered the agent, or the input breaks its schema",
    )
    wait_option(start, "until the run waits for a person or finishes, then show it")
    start.add_argument("--json", action="store_true", help="machine-readable output")
    start.set_defaults(handler=start_run)

    decide = commands.add_parser(
        "decide",
        help="publish a decision on an interrupt (SubmitDecision) and wait for its outcome",
    )
    cli_review.decide_arguments(decide)
    decide.add_argument("--by", required=True, help="who decides")
    decide.add_argument("--reason", default="", help="why (a rejection's reason reaches the agent)")
    decide.add_argument("--args", default=None, help="edit: all the new tool arguments (JSON)")
    decide.add_argument(
        "--response", default=None, help="respond: the answer (JSON; text for a text answer)"
    )
    decide.add_argument("--digest", default="", help="the request digest you decided on")
    decide.add_argument("--decision-id", default=None, help="idempotency key (default: new uuid)")
    waiting = decide.add_mutually_exclusive_group()
    wait_option(
        waiting,
        "for the outcome: accepted or counted (one vote of a k-of-n quorum) exit 0, refused "
        "exits 2 with the reason, none in time exits 1; a decision held for an interrupt "
        "not raised yet is waited out",
        default=30.0,
    )
    waiting.add_argument(
        "--no-wait", action="store_true", help="publish and exit: print the decision id only"
    )
    decide.add_argument("--json", action="store_true", help="machine-readable output")
    decide.set_defaults(handler=submit_decision)

    cancel = commands.add_parser("cancel", help="cancel a run (publishes CancelRun)")
    cancel.add_argument("run_id")
    cancel.add_argument("--by", default=None, help="who cancels (default: $USER)")
    cancel.add_argument("--reason", default="")
    cancel.add_argument("--json", action="store_true", help="machine-readable output")
    cancel.set_defaults(handler=cancel_run)


async def start_run(settings: Settings, args: argparse.Namespace) -> int:
    run_input = json_object(args.input, "--input")
    requester = args.by or getpass.getuser()
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        run_id = await runtime.publisher(signer=requester).start_run(
            args.agent,
            run_input,
            requested_by=requester,
            run_id=args.run_id,
            agent_version=args.agent_version,
            agents=None if args.force else runtime.agents(),
            patience_s=START_PATIENCE_S,
        )
    if args.wait is None:
        print(json.dumps({"run_id": run_id}) if args.json else run_id)
        return 0
    shown = argparse.Namespace(run_id=run_id, wait=args.wait, json=args.json)
    return await cli_queries.runs_show(settings, shown)


async def submit_decision(settings: Settings, args: argparse.Namespace) -> int:
    decision = await cli_review.decision_input(settings, args)
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        publisher = runtime.publisher(signer=args.by)
        position = None if args.no_wait else await publisher.outcome_position(args.run_id)
        decision_id = await publisher.submit_decision(
            args.run_id,
            decision.interrupt_id,
            decision.kind,
            decided_by=args.by,
            reason=args.reason,
            edited_args=decision.edited_args,
            response=decision.response,
            digest=decision.digest,
            decision_id=args.decision_id,
        )
        if position is None:
            print(json.dumps({"decision_id": decision_id}) if args.json else decision_id)
            return 0
        outcome = await publisher.wait_for_outcome(decision_id, position, args.wait)
    if outcome.status == "accepted":
        await cli_review.settled(settings, decision, args.wait)
    status = outcome.status or ("accepted" if outcome.accepted else "refused")
    if args.json:
        print(
            json.dumps(
                {
                    "decision_id": decision_id,
                    "accepted": outcome.accepted,
                    "status": status,
                    "reason": outcome.reason,
                }
            )
        )
    else:
        detail = f": {outcome.reason}" if outcome.reason and status != "accepted" else ""
        print(f"{decision_id} {status}{clean(detail)}")
    return 0 if outcome.accepted else 2


async def cancel_run(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        who = args.by or getpass.getuser()
        await runtime.publisher(signer=who).cancel_run(
            args.run_id, cancelled_by=who, reason=args.reason
        )
    if args.json:
        print(json.dumps({"run_id": args.run_id, "cancel_requested": True}))
    else:
        print(f"cancel requested for {args.run_id}")
    return 0
