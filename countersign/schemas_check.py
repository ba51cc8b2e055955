"""`make schemas-check`: fail when a schema change breaks the evolution rules (events.evolution)."""

from __future__ import annotations

import sys
from pathlib import Path

from events.catalog import Catalog
from events.errors import CatalogError
from events.evolution import evolution_problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else None
    try:
        catalog = Catalog(directory)
    except CatalogError as exc:
        print(f"schemas-check: {exc}", file=sys.stderr)
        return 1
    problems = evolution_problems(catalog)
    for problem in problems:
        print(f"schemas-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"schemas-check: release {catalog.release}, {len(catalog.current)} types, "
        f"{len(catalog.versions)} released schemas: every rule holds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
