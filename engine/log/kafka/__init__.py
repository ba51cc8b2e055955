"""The Kafka adapter of the event-log port; the only package that imports aiokafka.

    from engine.log.kafka import KafkaLog

The face is light: `KafkaLog` and `KafkaMember` (and with them aiokafka) load on first use,
so the pure modules here (`config`, `plan`, `connection`) can be imported on their own.
docs/kafka-internals.md explains the adapter's choices.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.log.kafka.log import KafkaLog
    from engine.log.kafka.member import KafkaMember

__all__ = ["KafkaLog", "KafkaMember"]

_HOMES = {"KafkaLog": "engine.log.kafka.log", "KafkaMember": "engine.log.kafka.member"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
