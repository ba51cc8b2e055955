"""`countersign erase SUBJECT`: destroy a data subject's key (crypto-shredding).

The personal values sealed for the subject (docs/erasure.md) can no longer be opened: the
log, its hash chain, the anchors and the projections are untouched and still verify; what
shows them reads `erased`. A tool that handles the subject's personal data is not run for
them again. There is no undo.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from countersign import bootstrap
from countersign.settings import Settings
from engine.errors import ConfigurationError
from engine.privacy.keys import MAX_SUBJECT_CHARS

__all__ = ["register"]


def register(commands: Any) -> None:
    erase = commands.add_parser(
        "erase",
        help="destroy a data subject's key: their personal values read as erased (no undo)",
        description="Destroy the key that seals SUBJECT's personal data (crypto-shredding). "
        "The audit still verifies; the values read as erased. No undo.",
    )
    erase.add_argument("subject", help="the data subject's id (the tool argument so marked)")
    erase.add_argument("--json", action="store_true", help="machine-readable output")
    erase.set_defaults(handler=run_erase)


async def run_erase(settings: Settings, args: argparse.Namespace) -> int:
    subject: str = args.subject
    if not 0 < len(subject) <= MAX_SUBJECT_CHARS or not subject.isprintable():
        raise ConfigurationError(f"a data subject is 1 to {MAX_SUBJECT_CHARS} printable characters")
    async with bootstrap.subject_keys(settings) as store:
        if store is None:
            raise ConfigurationError(
                "the in-memory log keeps its subject keys in its own process: nothing to erase"
            )
        destroyed = await store.erase(subject)
    if args.json:
        print(json.dumps({"subject": subject, "erased": True, "already": not destroyed}))
    elif destroyed:
        print(f"erased {subject}: the key is destroyed; their personal values read as erased")
    else:
        print(f"{subject} was erased already")
    return 0
