"""The projections package's face is cheap: importing it, its pure core, the in-memory twin or
the projector's loop loads no I/O library and no engine worker (each in a fresh interpreter).
Only the PostgreSQL adapter (`projections.store*`, `live`, `rebuild`) loads asyncpg."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LIGHT = [
    "projections",
    "projections.fold",
    "projections.applying",
    "projections.log_identity",
    "projections.memory",
    "projections.store_tables",
    "projections.queries",
    "projections.insights",
    "projections.errors",
    "projections.runner",
    "projections.status",
    "projections.verify",
]
HEAVY = ("asyncpg", "aiokafka")
WORKER = ("engine.runtime", "engine.worker")  # the worker shell (and where it used to live)


def loaded_by(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


@pytest.mark.parametrize("module", LIGHT)
def test_importing_loads_neither_asyncpg_nor_aiokafka_nor_the_worker(module: str) -> None:
    loaded = loaded_by(f"import {module}")

    assert module in loaded
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(WORKER)]
    assert heavy == []


def test_the_face_names_the_store_and_loads_it_only_when_asked() -> None:
    before = loaded_by("import projections\nassert 'ProjectionStore' in projections.__all__")
    after = loaded_by("import projections\nprojections.ProjectionStore")

    assert "asyncpg" not in before
    assert "asyncpg" in after  # the name still works, from its own module
    assert "projections.store" in after
