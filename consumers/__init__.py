"""Processes and clients that consume (or feed) topics other than the projections.

- `CommandPublisher`: starts runs, publishes decisions and cancellations (commands topic);
- `ApprovalsFeed`: the approvals topic as typed notices (requests, outcomes, notifications);
- `DeadLetters`: the dead-letter topic: list, show, requeue;
- `Agents`: what the workers registered (agents topic): list, and check a run before it starts.

Importing this package loads no client library: each takes an `EventLog` (engine.log.port).
"""

from consumers.agents import Agents, InvalidInput, UnknownAgent
from consumers.approvals import ApprovalsFeed, FeedItem, FeedTimeout
from consumers.dead_letters import DeadLetter, DeadLetters, Requeue, RequeueRefused
from consumers.publisher import CommandPublisher, OutcomeTimeout

__all__ = [
    "Agents",
    "ApprovalsFeed",
    "CommandPublisher",
    "DeadLetter",
    "DeadLetters",
    "FeedItem",
    "FeedTimeout",
    "InvalidInput",
    "OutcomeTimeout",
    "Requeue",
    "RequeueRefused",
    "UnknownAgent",
]
