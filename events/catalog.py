"""The schema catalog: today's reader schemas, every released writer schema, the releases and
the upcasters, checked against each other once, at construction.

Layout of a schema directory (see docs/schemas.md):
- `<full name>.avsc`: today's schema of each message type (and of named types they use,
  such as `countersign.events.ApprovalRequest`), which this release reads into and writes.
- `history/<full name>/<n>.avsc`: version n of a message type as released, self-contained
  (named types written out), never edited once released.
- `releases.json`: `{"<release>": {"<full name>": <version>, ...}, ...}`: what each release
  wrote. The newest release must be exactly today's schemas.

Files are named by their full Avro name so that a schema can refer to a named type defined in
another file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.approval import ApprovalRequest
from events.canonical import canonical_form, fingerprint, full_name, inline_named
from events.canonical import rabin_fingerprint as rabin_fingerprint
from events.checkpoints import Checkpoint
from events.commands import COMMAND_TYPES
from events.errors import CatalogError, EventsError
from events.notices import NOTICE_TYPES
from events.registry import AgentRegistered
from events.run_events import RUN_EVENT_TYPES
from events.upcasting import UPCASTERS, Upcaster

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

EVENTS, COMMANDS, APPROVALS = "countersign.events", "countersign.commands", "countersign.approvals"
INTERNAL = "countersign.internal"
"""Records only workers write and read (restore checkpoints)."""

MESSAGE_TYPES: Mapping[str, type[Any]] = {
    **{f"{EVENTS}.{cls.__name__}": cls for cls in RUN_EVENT_TYPES},
    **{f"{COMMANDS}.{cls.__name__}": cls for cls in COMMAND_TYPES},
    **{f"{APPROVALS}.{cls.__name__}": cls for cls in NOTICE_TYPES},
    f"{INTERNAL}.Checkpoint": Checkpoint,
    f"{INTERNAL}.AgentRegistered": AgentRegistered,
}
"""Every message type of this release, by the full Avro name of its schema."""

NESTED_TYPES: Mapping[str, type[Any]] = {f"{EVENTS}.ApprovalRequest": ApprovalRequest}


@dataclass(frozen=True)
class SchemaFile:
    full_name: str
    path: Path
    raw: dict[str, Any]


@dataclass(frozen=True)
class SchemaVersion:
    """One released writer schema: self-contained, with its fingerprint."""

    name: str
    version: int
    release: int
    raw: dict[str, Any]
    fingerprint: bytes


def schema_dir() -> Path:
    return Path(os.environ.get("COUNTERSIGN_SCHEMA_DIR", DEFAULT_SCHEMA_DIR))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc


def load_schema_files(directory: Path | None = None) -> dict[str, SchemaFile]:
    directory = directory or schema_dir()
    if not directory.is_dir():
        raise EventsError(f"schema directory {directory} not found (set COUNTERSIGN_SCHEMA_DIR)")
    files: dict[str, SchemaFile] = {}
    for path in sorted(directory.glob("*.avsc")):
        raw = _read_json(path)
        name = full_name(raw)
        if path.stem != name:
            raise EventsError(f"{path.name} holds {name}: name the file after the schema")
        files[name] = SchemaFile(name, path, raw)
    return files


def load_history(directory: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """`history/<full name>/<n>.avsc` → {full name: {n: schema}}."""
    history: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted((directory / "history").glob("*/*.avsc")):
        if not path.stem.isdigit():
            raise CatalogError(f"{path}: history files are named <version>.avsc")
        raw = _read_json(path)
        if full_name(raw) != path.parent.name:
            raise CatalogError(f"{path} holds {full_name(raw)}, not {path.parent.name}")
        history.setdefault(path.parent.name, {})[int(path.stem)] = raw
    return history


def load_releases(directory: Path) -> dict[int, dict[str, int]]:
    raw = _read_json(directory / "releases.json")
    return {int(release): dict(versions) for release, versions in raw.items()}


class Catalog:
    """What one release of Countersign knows: the types it reads into and writes (`current`),
    every writer schema it can read (`versions`, by fingerprint), and the upcasters that carry
    a retired shape into a current one. A test builds a later release from another directory,
    other classes and other upcasters without touching the real ones."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        types: Mapping[str, type[Any]] = MESSAGE_TYPES,
        upcasters: Sequence[Upcaster] = UPCASTERS,
    ) -> None:
        directory = directory or schema_dir()
        self.directory = directory
        self.types = dict(types)
        files = load_schema_files(directory)
        named = {name: f.raw for name, f in files.items() if name not in types}
        self.current: dict[str, dict[str, Any]] = {
            name: inline_named(files[name].raw, named) for name in types if name in files
        }
        self.releases = load_releases(directory)
        self.release = max(self.releases, default=0)
        self.upcasters = {(u.source, u.version): u for u in upcasters}
        if len(self.upcasters) != len(upcasters):
            raise CatalogError("two upcasters for one (type, version)")
        self.versions = self._versions(load_history(directory))
        self._check()

    def _versions(self, history: Mapping[str, Mapping[int, dict[str, Any]]]) -> list[SchemaVersion]:
        first_release: dict[tuple[str, int], int] = {}
        for release in sorted(self.releases):
            for name, version in self.releases[release].items():
                if version not in history.get(name, {}):
                    raise CatalogError(f"release {release} lists {name} {version}: no such file")
                first_release.setdefault((name, version), release)
        out = []
        for name, by_version in sorted(history.items()):
            for version, raw in sorted(by_version.items()):
                first = first_release.get((name, version))
                if first is None:
                    raise CatalogError(f"history of {name} version {version} is in no release")
                out.append(SchemaVersion(name, version, first, raw, fingerprint(raw)))
        return out

    def _check(self) -> None:
        missing = set(self.types) - set(self.current)
        if missing:
            raise CatalogError(f"no schema file for {sorted(missing)}")
        newest = self.releases.get(self.release, {})
        by_key = {(v.name, v.version): v for v in self.versions}
        for name, raw in self.current.items():
            released = by_key.get((name, newest.get(name, -1)))
            if released is None or canonical_form(released.raw) != canonical_form(raw):
                raise CatalogError(
                    f"{name}: today's schema is not the one release {self.release} lists; "
                    "release it (docs/schemas.md, 'Changing a schema')"
                )
        for version in self.versions:
            if version.name not in self.current:
                self.upcast_chain(version.name, version.version)
        fingerprints = [v.fingerprint for v in self.versions]
        if len(set(fingerprints)) != len(fingerprints):
            raise CatalogError("two history files have the same canonical form")

    def upcast_chain(self, name: str, version: int) -> list[Upcaster]:
        """The upcasters that carry `name` version `version` to a type this release has."""
        chain: list[Upcaster] = []
        key = (name, version)
        while key in self.upcasters:
            upcaster = self.upcasters[key]
            chain.append(upcaster)
            key = (upcaster.target, upcaster.target_version)
            if len(chain) > len(self.upcasters):
                raise CatalogError(f"upcasters of {name} {version} go round in a circle")
        if key[0] not in self.current:
            raise CatalogError(f"{name} version {version} has no reader: add an upcaster")
        if chain and self.find(*key) is None:
            raise CatalogError(f"an upcaster of {name} {version} targets {key}: no such schema")
        return chain

    def find(self, name: str, version: int) -> SchemaVersion | None:
        return next((v for v in self.versions if (v.name, v.version) == (name, version)), None)

    def version_of(self, name: str) -> SchemaVersion:
        """The released version of `name` that today's schema is."""
        found = self.find(name, self.releases[self.release][name])
        assert found is not None  # _check saw to it
        return found
