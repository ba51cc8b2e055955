"""Which notifications an approvals notice calls for, and what they say. Pure.

    routing = Routing.parse(json.load(open("notify.json")))
    planned = plan(notice, routing, base_url="https://approvals.example.com")
    planned.deliveries     # one per channel the request's route names, and its reminders
    planned.closes         # interrupt ids whose pending reminders no longer matter

A routing file names the channels and which requests go where, by urgency:

    {"channels": {"ops": {"type": "webhook", "url": "https://hooks.slack.com/services/..."},
                  "leads": {"type": "email", "to": ["leads@example.com"]}},
     "routes": [{"risk": ["high", "critical"], "channels": ["ops", "leads"]},
                {"policy": ["refund-limit"], "channels": ["leads"]},
                {"channels": ["ops"]}],
     "remind_before_s": [3600, 600]}

The first route whose every given field matches (`risk`, `policy` by name, `tool`, `agent`)
wins. Each delivery has an id made of the request, the channel and what it is (`request`,
`escalation`, `reminder-<seconds>`): the ledger keeps at most one of each, so a notice read
twice (a restart, a rebalance) never makes a second message. A reminder is due that many
seconds before the deadline, if that is after the request was raised. An accepted decision
closes the request: its reminders are cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from events.json import Json, JsonObject
from events.notices import ApprovalRequested, DecisionOutcome, Notice

CHANNEL_TYPES = ("webhook", "email")
MAX_TEXT = 1_000


class RoutingError(ValueError):
    """A routing file that cannot be used (the message says where)."""


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    url: str = ""
    to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    channels: tuple[str, ...]
    risk: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()
    tool: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()

    def matches(self, notice: ApprovalRequested) -> bool:
        request = notice.request
        policy_name = request.policy.split("@", 1)[0]
        return all(
            not wanted or value in wanted
            for wanted, value in (
                (self.risk, request.risk),
                (self.policy, policy_name),
                (self.tool, request.tool or ""),
                (self.agent, notice.agent),
            )
        )


@dataclass(frozen=True, slots=True)
class Routing:
    channels: Mapping[str, Channel] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    remind_before_s: tuple[float, ...] = ()

    @staticmethod
    def parse(data: Json) -> Routing:
        if not isinstance(data, dict):
            raise RoutingError("the routing file is a JSON object")
        channels = {name: _channel(name, spec) for name, spec in _object(data, "channels").items()}
        routes = tuple(_route(i, spec, channels) for i, spec in enumerate(_list(data, "routes")))
        before = tuple(_seconds(v) for v in _list(data, "remind_before_s"))
        return Routing(channels, routes, tuple(sorted(set(before), reverse=True)))

    def route(self, notice: ApprovalRequested) -> tuple[str, ...]:
        for route in self.routes:
            if route.matches(notice):
                return route.channels
        return ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One message to one channel; `id` is what makes it at most once."""

    id: str
    interrupt_id: str
    run_id: str
    channel: str
    kind: str
    due_at: datetime
    message: JsonObject


@dataclass(frozen=True, slots=True)
class Planned:
    deliveries: tuple[Delivery, ...] = ()
    closes: tuple[str, ...] = ()


def plan(notice: Notice, routing: Routing, *, base_url: str) -> Planned:
    if isinstance(notice, DecisionOutcome):
        closed = notice.status == "accepted" or (not notice.status and notice.accepted)
        return Planned(closes=(notice.interrupt_id,) if closed else ())
    if not isinstance(notice, ApprovalRequested):
        return Planned()
    raised = datetime.fromtimestamp(notice.requested_at_us / 1e6, UTC)
    kind = "escalation" if notice.request.escalation > 0 else "request"
    moments = [(kind, raised)]
    deadline = _deadline(notice)
    if deadline is not None:
        for before in routing.remind_before_s:
            at = deadline - timedelta(seconds=before)
            if at > raised:
                moments.append((f"reminder-{before:g}", at))
    deliveries = tuple(
        Delivery(
            id=f"{notice.interrupt_id}/{channel}/{what}",
            interrupt_id=notice.interrupt_id,
            run_id=notice.run_id,
            channel=channel,
            kind=what,
            due_at=at,
            message=message(notice, what, base_url),
        )
        for channel in routing.route(notice)
        for what, at in moments
    )
    return Planned(deliveries=deliveries)


def message(notice: ApprovalRequested, kind: str, base_url: str) -> JsonObject:
    """What every channel says, as plain values (the channels format it)."""
    request = notice.request
    deadline = _deadline(notice)
    link = f"{base_url.rstrip('/')}/runs/{notice.run_id}/requests/{notice.interrupt_id}"
    lead = {
        "request": "Approval needed",
        "escalation": "Escalated: nobody decided in time",
    }.get(kind, "Reminder: still waiting for a decision")
    return {
        "kind": kind,
        "headline": f"{lead}: {_clip(request.title)}",
        "title": _clip(request.title),
        "link": link,
        "agent": notice.agent,
        "requested_by": notice.requested_by,
        "risk": request.risk,
        "amount": request.amount,
        "why": _clip(request.reasoning),
        "impact": _clip(request.impact),
        "policy": request.policy,
        "approvers": list(request.approvers),
        "deadline": None if deadline is None else deadline.isoformat(),
        "on_timeout": request.on_timeout,
    }


def webhook_body(message: JsonObject) -> JsonObject:
    """An incoming-webhook message as Slack and Mattermost both take it: `text` (with the
    link, which both turn into a link) and one attachment with the facts."""
    facts: list[Json] = [
        {"title": title, "value": str(message[key]), "short": True}
        for title, key in (("Risk", "risk"), ("Amount", "amount"), ("Asked by", "requested_by"),
                           ("Deadline", "deadline"), ("Policy", "policy"))
        if message.get(key) not in (None, "")
    ]  # fmt: skip
    colour = {"critical": "#b42318", "high": "#b42318", "medium": "#9a5b00"}
    return {
        "text": f"{message['headline']} {message['link']}",
        "attachments": [
            {
                "fallback": f"{message['headline']} {message['link']}",
                "color": colour.get(str(message.get("risk")), "#1d7a3a"),
                "title": message["title"],
                "title_link": message["link"],
                "text": "\n".join(str(message[k]) for k in ("why", "impact") if message.get(k)),
                "fields": facts,
            }
        ],
    }


def email_text(message: JsonObject) -> tuple[str, str]:
    """(subject, plain-text body)."""
    lines = [
        str(message["headline"]),
        "",
        f"Open the card to decide: {message['link']}",
        "",
    ]
    for label, key in (("Why", "why"), ("Impact", "impact"), ("Risk", "risk"),
                       ("Amount", "amount"), ("Asked by", "requested_by"), ("Policy", "policy"),
                       ("Deadline", "deadline"), ("On timeout", "on_timeout")):  # fmt: skip
        if message.get(key) not in (None, ""):
            lines.append(f"{label}: {message[key]}")
    subject = " ".join(str(message["headline"]).split())[:200]
    return subject, "\n".join(lines) + "\n"


def _deadline(notice: ApprovalRequested) -> datetime | None:
    at = notice.request.deadline_us
    return None if at is None else datetime.fromtimestamp(at / 1e6, UTC)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_TEXT else flat[: MAX_TEXT - 1] + "…"


def _channel(name: str, spec: Json) -> Channel:
    if not isinstance(spec, dict) or spec.get("type") not in CHANNEL_TYPES:
        raise RoutingError(f"channel {name!r}: type is one of {', '.join(CHANNEL_TYPES)}")
    if spec["type"] == "webhook":
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise RoutingError(f"channel {name!r}: a webhook needs an http(s) url")
        return Channel(name, "webhook", url=url)
    to = spec.get("to")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise RoutingError(f"channel {name!r}: an email channel needs to: [addresses]")
    return Channel(name, "email", to=tuple(str(a) for a in to))


def _route(index: int, spec: Json, channels: Mapping[str, Channel]) -> Route:
    if not isinstance(spec, dict):
        raise RoutingError(f"route {index}: an object")
    names = _strings(spec.get("channels"), f"route {index} channels")
    unknown = [n for n in names if n not in channels]
    if unknown or not names:
        raise RoutingError(f"route {index}: unknown or no channels {unknown}")
    return Route(
        names,
        *(_strings(spec.get(k), f"route {index} {k}") for k in ("risk", "policy", "tool", "agent")),
    )


def _strings(value: Json, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(str(v) for v in value)
    raise RoutingError(f"{where}: a name or a list of names")


def _object(data: JsonObject, key: str) -> JsonObject:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise RoutingError(f"{key} is an object")
    return value


def _list(data: JsonObject, key: str) -> list[Json]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RoutingError(f"{key} is a list")
    return value


def _seconds(value: Json) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise RoutingError("remind_before_s holds positive numbers of seconds")
    return float(value)
