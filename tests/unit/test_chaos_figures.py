"""The fault suite's figures come after pytest's progress line, in a section of their own."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_figures_are_printed_after_the_progress_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.faults.figures import chaos_report, pytest_terminal_summary")
    pytester.makepyfile(
        """
        def test_one(chaos_report):
            chaos_report('[chaos] {"scenario": "one"}')

        def test_two(chaos_report):
            chaos_report('[chaos] {"scenario": "two"}')
        """
    )

    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)
    lines = result.outlines
    progress = next(i for i, line in enumerate(lines) if line.startswith(".."))
    assert lines[progress].split() == ["..", "[100%]"]
    section = next(i for i, line in enumerate(lines) if "chaos figures" in line)
    assert section > progress
    assert lines[section + 1 : section + 3] == [
        '[chaos] {"scenario": "one"}',
        '[chaos] {"scenario": "two"}',
    ]
