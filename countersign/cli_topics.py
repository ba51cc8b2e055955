"""`countersign topics plan|apply|check|repartition`: the Kafka topics of a deployment."""

from __future__ import annotations

import argparse
import json
from typing import Any

from countersign import bootstrap
from countersign.settings import Settings
from engine.errors import ConfigurationError


def register(commands: Any) -> None:
    topics = commands.add_parser("topics", help="the Kafka topics a deployment needs")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = actions.add_parser("plan", help="print the exact topics and settings to create")
    plan.add_argument("--brokers", type=int, help="size of the target cluster (else: asked)")
    plan.add_argument(
        "--partitions", type=int, help="partitions per topic (COUNTERSIGN_PARTITIONS)"
    )
    acls = actions.add_parser("acls", help="print each role's ACLs as kafka-acls.sh commands")
    actions.add_parser("apply", help="create the missing topics as planned, then check")
    actions.add_parser("check", help="what keeps these topics from the engine's promises")
    repartition = actions.add_parser(
        "repartition", help="add partitions; runs keep their partition (the map records it)"
    )
    repartition.add_argument("--partitions", type=int, required=True, help="the new count")
    for parser, handler in (
        (plan, topics_plan),
        (acls, topics_acls),
        (actions.choices["apply"], topics_apply),
        (actions.choices["check"], topics_check),
        (repartition, topics_repartition),
    ):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(handler=handler)


async def topics_plan(settings: Settings, args: argparse.Namespace) -> int:
    from engine.log.kafka.plan import Replication, broker_settings, plan

    brokers = args.brokers or await _brokers(settings)
    replication = Replication.for_cluster(
        brokers,
        factor=settings.kafka.replication_factor,
        min_insync=settings.kafka.min_insync_replicas,
    )
    partitions = args.partitions or settings.partitions
    specs = plan(bootstrap.topics(settings), partitions, replication)
    if args.json:
        print(json.dumps([_spec_json(spec) for spec in specs], indent=2))
        return 0
    print("# broker settings (server.properties):")
    for name, value in broker_settings(replication).items():
        print(f"#   {name}={value}")
    print(
        f"# {len(specs)} topics for prefix {settings.topic_prefix!r}: {partitions} "
        f"partitions, replication factor {replication.factor}, "
        f"min.insync.replicas {replication.min_insync} ({brokers} brokers)"
    )
    for spec in specs:
        configs = " ".join(
            f"--config {name}={value}" for name, value in sorted(spec.configs.items())
        )
        print(f"\n# {spec.purpose}")
        print(
            f"kafka-topics.sh --bootstrap-server $BOOTSTRAP --create --topic {spec.name} "
            f"--partitions {spec.partitions} --replication-factor {spec.replication_factor} "
            f"{configs}"
        )
    print(
        "\n# clients must produce with acks=all and idempotence (the engine's own do); "
        "`countersign topics apply` creates the same"
    )
    return 0


async def topics_acls(settings: Settings, args: argparse.Namespace) -> int:
    from engine.log.kafka.acls import role_acls

    roles = role_acls(
        bootstrap.topics(settings),
        worker_group=settings.worker_group,
        projector_group=settings.projector_group,
    )
    if args.json:
        print(json.dumps({role: [acl.as_tuple() for acl in acls] for role, acls in roles.items()}))
        return 0
    for role, acls in roles.items():
        print(f"# {role} (principal {acls[0].principal}; replace it with yours)")
        for acl in acls:
            kind = {"transactional_id": "transactional-id"}.get(acl.resource, acl.resource)
            operation = "".join(word.title() for word in acl.operation.split("_"))
            print(
                f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties "
                f"--add --allow-principal {acl.principal} --operation {operation} "
                f"--{kind} '{acl.name}' --resource-pattern-type {acl.pattern}"
            )
    return 0


async def topics_apply(settings: Settings, args: argparse.Namespace) -> int:
    event_log = await _open(settings)
    try:
        # open_log already created what was missing; say what is there and check it.
        from countersign.kafka_topics import inspect_topics

        replication = await event_log.replication()
        problems = await inspect_topics(settings, event_log)
    finally:
        await event_log.close()
    if not args.json:
        print(
            f"topics for prefix {settings.topic_prefix!r} in place (new ones created with "
            f"replication factor {replication.factor}, min.insync.replicas "
            f"{replication.min_insync})"
        )
    return _report(problems, args.json)


async def topics_check(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.kafka_topics import inspect_topics

    event_log = await _open(settings, ensure=False)
    try:
        problems = await inspect_topics(settings, event_log)
    finally:
        await event_log.close()
    return _report(problems, args.json)


async def topics_repartition(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.kafka_topics import repartition

    event_log = await _open(settings, ensure=False)
    try:
        before, after = await repartition(settings, event_log, args.partitions)
    finally:
        await event_log.close()
    if args.json:
        print(json.dumps({"before": list(before.eras), "after": list(after.eras)}))
        return 0
    print(
        f"partition map {before.encode().decode()} -> {after.encode().decode()}: runs started "
        f"before keep their partitions, new runs spread over {after.partitions}.\n"
        f"Set COUNTERSIGN_PARTITIONS={after.partitions} for every process; running workers "
        "take the new partitions at their next rebalance."
    )
    return 0


async def _open(settings: Settings, *, ensure: bool = True) -> Any:
    if bootstrap.backend(settings) != "kafka":
        raise ConfigurationError(
            "`countersign topics` is for Kafka: set COUNTERSIGN_KAFKA_BOOTSTRAP or run "
            "`countersign kafka up`"
        )
    if ensure:
        return await bootstrap.open_log(settings, client_id="countersign-topics")
    from countersign.kafka_topics import kafka_log

    address = bootstrap.kafka_bootstrap(settings)
    assert address is not None  # backend() said kafka
    event_log = kafka_log(settings, address, client_id="countersign-topics")
    await event_log.start()
    return event_log


async def _brokers(settings: Settings) -> int:
    address = bootstrap.kafka_bootstrap(settings)
    if address is None:
        raise ConfigurationError(
            "no Kafka broker to ask the cluster size: give --brokers N (or "
            "COUNTERSIGN_KAFKA_REPLICATION_FACTOR)"
        )
    from countersign.kafka_topics import connection
    from engine.log.kafka import admin

    return await admin.broker_count(connection(settings, address))


def _spec_json(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "configs": dict(spec.configs),
        "purpose": spec.purpose,
    }


def _report(problems: list[Any], as_json: bool) -> int:
    fatal = [problem for problem in problems if problem.fatal]
    if as_json:
        rows = [{"topic": p.topic, "problem": p.message, "fatal": p.fatal} for p in problems]
        print(json.dumps({"ok": not fatal, "problems": rows}, indent=2))
        return 1 if fatal else 0
    for problem in problems:
        print(f"{'REFUSED' if problem.fatal else 'warning'}  {problem}")
    print(
        "ok: the topics can keep the engine's promises"
        if not fatal
        else f"{len(fatal)} problem(s): workers and projectors refuse to start until fixed"
    )
    return 1 if fatal else 0
