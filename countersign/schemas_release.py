"""`python -m countersign.schemas_release N`: record today's schemas as release N.

For every message type whose schema today differs from what the release before N wrote, the
self-contained schema goes to `schemas/history/<full name>/<v>.avsc` (the next version, or 1
for a new type) and `releases.json` gets N's map. Re-running it while release N is still being
made rewrites N's own files; a version an earlier release lists is never touched (and the
catalog check fails if today's schema contradicts one). Then `make schemas-check`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from events.canonical import canonical_form, inline_named
from events.catalog import (
    MESSAGE_TYPES,
    load_history,
    load_releases,
    load_schema_files,
    schema_dir,
)


def release(number: int, directory: Path) -> dict[str, int]:
    files = load_schema_files(directory)
    named = {name: f.raw for name, f in files.items() if name not in MESSAGE_TYPES}
    history = load_history(directory)
    releases = {r: v for r, v in load_releases(directory).items() if r < number}
    earlier = releases.get(max(releases, default=0), {})
    frozen = {(name, v) for versions in releases.values() for name, v in versions.items()}
    versions: dict[str, int] = {}
    for name in sorted(MESSAGE_TYPES):
        today = inline_named(files[name].raw, named)
        before = earlier.get(name)
        if before is not None and canonical_form(history[name][before]) == canonical_form(today):
            versions[name] = before
            continue
        version = (before or 0) + 1
        if (name, version) in frozen:
            raise SystemExit(f"{name} version {version} is in an earlier release already")
        path = directory / "history" / name / f"{version}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(today, indent=2) + "\n")
        versions[name] = version
    for name, by_version in history.items():  # drafts of N no longer wanted
        for version in by_version:
            if (name, version) not in frozen and versions.get(name) != version:
                (directory / "history" / name / f"{version}.avsc").unlink()
    all_releases = {**load_releases(directory), number: versions}
    body = {str(r): dict(sorted(v.items())) for r, v in sorted(all_releases.items())}
    (directory / "releases.json").write_text(json.dumps(body, indent=2) + "\n")
    return versions


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m countersign.schemas_release RELEASE", file=sys.stderr)
        return 2
    versions = release(int(args[0]), schema_dir())
    print(f"release {args[0]}: {len(versions)} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
