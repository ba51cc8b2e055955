"""The fault suite's figures: collected while the scenarios run, printed once at the end.

Each scenario hands its JSON line to the `chaos_report` fixture; `pytest_terminal_summary`
prints them all in a "chaos figures" section after the progress dots (printing them from
inside a test would break pytest's progress line). They are visible in the CI log, and
appended to $COUNTERSIGN_CHAOS_REPORT by the harness as before.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Where a scenario puts its figures line."""
    return request.config.stash.setdefault(_FIGURES, []).append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("chaos figures")
        for line in lines:
            terminalreporter.write_line(line)
