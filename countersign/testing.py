"""Replay tests for agent authors: keep exported runs in your repository, and fail the test
suite when a change to the agent would no longer replay them (reads files: I/O).

    from countersign.testing import assert_replays
    from myagents import app

    def test_recorded_runs_still_replay():
        for path in Path("tests/histories").glob("*.cshist"):
            assert_replays(app, path)

A history file comes from `countersign export RUN_ID -o run.cshist` (`--redact` for one
without personal fields). The assertion's message is the divergence report: the seq, both
sides of the call, the argument diff and the line of agent code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from countersign.replay_view import render_rerun
from countersign.run_source import from_file
from engine.agent.app import App
from engine.core.rerun import Rerun, RerunOptions, rerun
from events.codec import Codec
from events.envelope import EventEnvelope
from events.history_file import HistoryFile

__all__ = ["assert_replays"]


def assert_replays(
    app: App,
    history: str | Path | HistoryFile | Sequence[EventEnvelope],
    *,
    version: str | None = None,
    codec: Codec | None = None,
) -> Rerun:
    """Re-run `history` (a history file's path, a read `HistoryFile`, or a run's events)
    against `app`; `AssertionError` with the report unless it replays identically. `version`
    replays with another version of the agent than the one the run recorded."""
    if isinstance(history, str | Path):
        path = Path(history)
        events: Sequence[EventEnvelope] = from_file(path, codec or Codec()).events
        name = str(path)
    elif isinstance(history, HistoryFile):
        events, name = history.events, f"run {history.run_id}"
    else:
        events, name = history, "the history"
    report = rerun(app, events, RerunOptions(version=version))
    if not report.identical:
        raise AssertionError(
            f"{name} does not replay:\n{render_rerun(report, app=app.name, steps=False)}"
        )
    return report
