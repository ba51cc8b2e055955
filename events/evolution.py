"""Schema evolution rules, checked over a whole catalog before a release ships. Pure.

- Every message type: today's schema reads every earlier version of it (backward,
  transitive), unless an upcaster carries that version instead (then the upcaster's target
  version must be readable, which the same rule checks on the target's history).
- Commands (other systems write them) and approvals-topic notices (other systems read them):
  also forward, transitive: every earlier version reads today's. For commands this keeps a
  worker still on the previous release able to read a registry-framed command from a
  publisher that already moved on (it resolves the newer writer schema from the registry),
  and keeps Confluent's FULL_TRANSITIVE subject rule satisfiable; for notices it keeps the
  consumers other teams built against an earlier release reading what we write now.
  A breaking change to either needs a new type, not an upcaster: we cannot upcast for them.
"""

from __future__ import annotations

from events.catalog import APPROVALS, COMMANDS, Catalog
from events.compatibility import read_problems

BOTH_WAYS = (COMMANDS + ".", APPROVALS + ".")


def evolution_problems(catalog: Catalog) -> list[str]:
    """Every way today's schemas break the rules above; empty when they hold."""
    problems: list[str] = []
    for version in catalog.versions:
        if (version.name, version.version) in catalog.upcasters:
            if version.name.startswith(BOTH_WAYS):
                problems.append(
                    f"{version.name} {version.version}: no upcasters for {version.name}"
                )
            continue
        if version.name not in catalog.current:
            continue  # the catalog already refuses a removed type without an upcaster
        today = catalog.version_of(version.name)
        if today.version == version.version:
            continue
        for problem in read_problems(today.raw, version.raw):
            problems.append(
                f"{version.name}: today's schema cannot read version {version.version}: {problem}"
            )
        if version.name.startswith(BOTH_WAYS):
            for problem in read_problems(version.raw, today.raw):
                problems.append(
                    f"{version.name}: version {version.version} cannot read today's "
                    f"(version {today.version}): {problem}"
                )
    for name in catalog.current:
        if name.startswith(BOTH_WAYS) and not any(
            v.name == name and v.version == 1 for v in catalog.versions
        ):
            problems.append(f"{name}: a command or notice type must keep its version 1")
    return problems
