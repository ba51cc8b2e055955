"""A hypothetical next release of Countersign's messages ("release 2" below: the one after
today's), built without touching the real ones.

What it changes, on top of today's schemas:
- `RunStarted` gains `tenant` (string, default "");
- `ToolCallCompleted` gains `duration_ms` (long, default 0);
- `RunCompleted` is renamed `RunFinished` and gains `outcome` (default "completed"): a
  breaking change, so release 1's `RunCompleted` is carried over by an upcaster;
- `SubmitDecision` gains an optional `channel` (null or string, default null).

The classes extend release 1's, so the engine (which matches release 1's classes) runs
unchanged with a release-2 codec, and instances of the old classes still encode (missing
fields take their defaults). Use `release2_codec(tmp_dir)` in tests; the lead's upgrade test
runs workers with it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events import commands as r1_commands
from events import run_events as r1_events
from events.catalog import COMMANDS, DEFAULT_SCHEMA_DIR, EVENTS, MESSAGE_TYPES, Catalog
from events.codec import DEFAULT_MAX_MESSAGE_BYTES, Codec
from events.fields import capped_field
from events.upcasting import Upcaster

RUN_STARTED = f"{EVENTS}.RunStarted"
TOOL_CALL_COMPLETED = f"{EVENTS}.ToolCallCompleted"
RUN_COMPLETED = f"{EVENTS}.RunCompleted"
RUN_FINISHED = f"{EVENTS}.RunFinished"
SUBMIT_DECISION = f"{COMMANDS}.SubmitDecision"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted(r1_events.RunStarted):
    tenant: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallCompleted(r1_events.ToolCallCompleted):
    duration_ms: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFinished(r1_events.RunCompleted):
    outcome: str = "completed"


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitDecision(r1_commands.SubmitDecision):
    channel: str | None = capped_field(64, default=None)
    """Where the decision was made (e.g. "slack"); release 1 does not know it."""


def _run_completed_to_run_finished(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, "outcome": "completed"}


UPCASTERS = (Upcaster(RUN_COMPLETED, 1, RUN_FINISHED, 1, _run_completed_to_run_finished),)
TYPES: dict[str, type[Any]] = {
    **{name: cls for name, cls in MESSAGE_TYPES.items() if name != RUN_COMPLETED},
    RUN_STARTED: RunStarted,
    TOOL_CALL_COMPLETED: ToolCallCompleted,
    RUN_FINISHED: RunFinished,
    SUBMIT_DECISION: SubmitDecision,
}
_ADDED: dict[str, dict[str, Any]] = {
    RUN_STARTED: {"name": "tenant", "type": "string", "default": ""},
    TOOL_CALL_COMPLETED: {"name": "duration_ms", "type": "long", "default": 0},
    SUBMIT_DECISION: {"name": "channel", "type": ["null", "string"], "default": None},
}


def write_release2_schemas(directory: Path) -> Path:
    """Today's schema directory, moved on to release 2, under `directory`."""
    root = directory / "schemas-release-2"
    if root.exists():
        return root
    shutil.copytree(DEFAULT_SCHEMA_DIR, root)
    releases = json.loads((root / "releases.json").read_text())
    newest = dict(releases[str(max(int(r) for r in releases))])
    for name, field in _ADDED.items():
        raw = _read(root / f"{name}.avsc")
        raw["fields"].append(field)
        newest[name] += 1
        _write(root / f"{name}.avsc", raw)
        _write(root / "history" / name / f"{newest[name]}.avsc", raw)
    finished = _read(root / f"{RUN_COMPLETED}.avsc")
    finished["name"] = "RunFinished"
    finished["doc"] = "Run event RunFinished (release 2's name for RunCompleted)."
    finished["fields"].append({"name": "outcome", "type": "string", "default": "completed"})
    (root / f"{RUN_COMPLETED}.avsc").unlink()
    _write(root / f"{RUN_FINISHED}.avsc", finished)
    _write(root / "history" / RUN_FINISHED / "1.avsc", finished)
    del newest[RUN_COMPLETED]
    newest[RUN_FINISHED] = 1
    releases[str(max(int(r) for r in releases) + 1)] = newest
    _write(root / "releases.json", releases)
    return root


def release2_catalog(directory: Path) -> Catalog:
    return Catalog(write_release2_schemas(directory), types=TYPES, upcasters=UPCASTERS)


def release2_codec(
    directory: Path,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    registry_format: bool = False,
) -> Codec:
    return Codec(
        catalog=release2_catalog(directory),
        max_message_bytes=max_message_bytes,
        registry_format=registry_format,
    )


def _read(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(path.read_text())
    return raw


def _write(path: Path, raw: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2) + "\n")
