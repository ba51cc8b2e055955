"""The topics a deployment needs on Kafka, with their settings. Pure."""

from __future__ import annotations

from engine.log.port import Topics

__all__ = ["topic_configs"]


def topic_configs(topics: Topics) -> list[tuple[frozenset[str], dict[str, str]]]:
    """Topic settings by kind. The runs topic is the source of truth: it never expires.
    Checkpoints keep only the newest record per key (partition); short segments let the
    cleaner drop the old ones soon (it never cleans the active segment)."""
    special = {topics.runs, topics.checkpoints}
    return [
        (frozenset({topics.runs}), {"retention.ms": "-1"}),
        (
            frozenset({topics.checkpoints}),
            {
                "cleanup.policy": "compact",
                "segment.ms": str(15 * 60 * 1000),
                "min.cleanable.dirty.ratio": "0.5",
            },
        ),
        (frozenset(topics.all) - special, {}),
    ]
