"""`countersign kafka up --secure`: each role's ACLs granted, and where its credentials are."""

from __future__ import annotations

import asyncio

from countersign import bootstrap
from countersign.local_kafka import LocalKafka, grant
from countersign.settings import Settings
from engine.log.kafka.acls import ROLES


async def grant_roles(settings: Settings, broker: LocalKafka, *, say: bool = True) -> None:
    granted = await asyncio.to_thread(
        grant,
        broker,
        bootstrap.topics(settings),
        worker_group=settings.worker_group,
        projector_group=settings.projector_group,
    )
    material = broker.material
    assert material is not None
    if not say:
        return
    print(f"SASL_SSL (SCRAM-SHA-512) with TLS; {granted} ACLs for prefix {settings.topic_prefix!r}")
    print("each role's settings (COUNTERSIGN_KAFKA_*), for `set -a; . FILE; set +a`:")
    for role in ("admin", *ROLES):
        print(f"  {role:<10} {material.dir / f'{role}.env'}   (mutual TLS: {role}-mtls.env)")
