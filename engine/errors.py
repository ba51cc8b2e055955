"""Errors of the engine.

EngineError
├── ConfigurationError      terminal: fix the app or the settings (unknown agent, tool, ...)
├── NonDeterminismError     replay diverged from the recorded history; the run is parked
├── AgentProtocolError      agent code awaited something outside its run context
├── ToolNotOk               `ToolResult.unwrap()` of a call that did not run (agent code's to catch)
├── NewerRelease            this worker met records a newer release wrote: it stands down
└── LogError                the event log failed
    ├── Fenced              terminal for this writer: another worker owns the partition now
    └── TransientLogError   retry: the log was unreachable or the outcome is unknown
        └── RegistryUnavailable  retry: the schema registry could not be asked
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class for engine errors."""


class ConfigurationError(EngineError):
    """The app or the settings are wrong; nothing to retry."""


class NonDeterminismError(EngineError):
    """Replayed agent code made a call that does not match the recorded one."""

    def __init__(self, call: int, expected: str, actual: str) -> None:
        super().__init__(f"call {call}: history has {expected}, code made {actual}")
        self.call = call
        self.expected = expected
        self.actual = actual


class ToolNotOk(EngineError):
    """`unwrap()` of a tool call that was rejected or failed. Uncaught, it fails the run
    (`RunFailed`), like any error of agent code."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"the tool call was {status}: {reason}")
        self.status = status
        self.reason = reason


class NewerRelease(EngineError):
    """The log holds records written by a newer release of Countersign: not corruption, but
    nothing this worker can act on. It leaves the group so that a newer worker takes over."""

    def __init__(self, message: str, *, release: int) -> None:
        super().__init__(message)
        self.release = release


class AgentProtocolError(EngineError):
    """Agent code awaited something that is not a run-context call (asyncio.sleep, a future...)."""


class LogError(EngineError):
    """The event log failed."""


class Fenced(LogError):
    """A newer writer owns this partition; this writer must stop touching its runs."""


class TransientLogError(LogError):
    """The log could not be reached or the outcome is unknown; the step can be retried."""


class RegistryUnavailable(TransientLogError):
    """The schema registry could not be asked (down, slow, refusing us): read the batch again
    later; its commands are not poison."""


def reason_of(exc: BaseException, limit: int = 500) -> str:
    """An exception as a reason to record or publish: its type and message, clipped (the
    message may echo hostile input of any size)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
