"""The timeline view (countersign timeline): durations, who, collapsible payloads; the HTML page
escapes everything the events hold and loads nothing."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pytest

from countersign.cli import main
from countersign.timeline_view import duration, render_html, render_text, timeline_rows
from events.run_events import RunStarted
from tests.unit.test_rerun import record

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_rows_say_when_how_long_after_and_who() -> None:
    history = record()
    stretched = [
        dataclasses.replace(e, occurred_at_us=e.occurred_at_us + i * 90_000_000)
        for i, e in enumerate(history)
    ]

    rows = timeline_rows(stretched)

    assert rows[0].after_s is None
    assert rows[1].after_s == 90.0
    assert rows[0].actor == "bob"
    decided = [r.actor for r in rows if r.type == "DecisionAccepted"]
    assert decided == ["carol", "alice"]
    assert "+1m30s" in render_text(stretched)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (0.25, "+250ms"), (12.5, "+12.5s"), (4000, "+1h06m"), (200_000, "+2d7h")],
)
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_page_escapes_what_events_hold_and_runs_nothing() -> None:
    history = record()
    first = history[0]
    assert isinstance(first.payload, RunStarted)
    hostile_start = dataclasses.replace(
        first,
        payload=dataclasses.replace(first.payload, requested_by=HOSTILE, input={"note": HOSTILE}),
    )

    page = render_html([hostile_start, *history[1:]])

    assert "<script" not in page
    assert "onerror=alert" not in page.replace(html.escape("onerror=alert"), "")
    assert html.escape(HOSTILE) in page
    assert "default-src 'none'" in page  # nothing loads, no script runs
    assert page.count("<details>") == len(history)


def test_timeline_from_a_file_as_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = Path(__file__).resolve().parents[1] / "histories" / "refund-approved.cshist"
    out = tmp_path / "run.html"

    code = main(["timeline", "--file", str(history), "--html", str(out)])

    assert code == 0
    page = out.read_text()
    assert "<h1>Run golden-refund-approved</h1>" in page
    assert "approve by alice accepted: checked the order" in page
    assert "wrote the timeline" in capsys.readouterr().out
