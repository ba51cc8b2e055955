"""The templates' filters: times, amounts, durations and SLA words as people read them. Pure."""

from __future__ import annotations

import json
from datetime import datetime

import jinja2

from events.json import Json

SLA_WORDS = {
    "overdue": "overdue",
    "due_soon": "due soon",
    "on_time": "on time",
    "no_deadline": "no deadline",
    "met": "met its deadline",
    "missed": "missed its deadline",
}


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    late = seconds < 0
    left = int(abs(seconds))
    days, left = divmod(left, 86_400)
    hours, left = divmod(left, 3_600)
    minutes, secs = divmod(left, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes:02d}m"
    else:
        text = f"{minutes}m {secs:02d}s"
    return f"{text} ago" if late else text


def amount(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def pretty(value: Json) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def compact(value: Json) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def install(env: jinja2.Environment) -> None:
    env.filters.update(
        when=when, iso=iso, duration=duration, amount=amount, pretty=pretty, compact=compact,
        sla=lambda state: SLA_WORDS.get(state, state),
    )  # fmt: skip
