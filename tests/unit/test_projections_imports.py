"""The projections package's face is cheap: importing it, or its pure core and the in-memory
twin, loads no I/O library and no worker (each import in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE = [
    "projections",
    "projections.fold",
    "projections.applying",
    "projections.log_identity",
    "projections.memory",
    "projections.store_tables",
    "projections.queries",
    "projections.insights",
    "projections.errors",
]
HEAVY = ("asyncpg", "aiokafka")
WORKER = "engine.worker"


def loaded_by(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


@pytest.mark.parametrize("module", PURE)
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
