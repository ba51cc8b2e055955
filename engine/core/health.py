"""Whether a long-running process is alive and ready, for orchestrators (`/livez`, `/readyz`).
Pure: the process notes what happens, and asks for a verdict with the time it reads.

- **Alive** unless its loop has made no progress (a poll, or a retry while the log is away)
  for `stall_s`; a restore or a tool call is waited for within that time, so `stall_s` is
  generous (10 minutes). An event loop that is blocked altogether cannot answer the probe
  at all, which says the same. A process that stood down stays alive.
- **Ready** once it is in its group and has polled, while the log answers, unless it stood
  down (a newer release wrote what it cannot read: it stays up, not ready, for the newer
  release to replace it) — and for the reasons its owner adds (partitions still restoring,
  a database that does not answer).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProcessHealth", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()


class ProcessHealth:
    def __init__(self, *, stall_s: float = 600.0) -> None:
        self._stall_s = stall_s
        self._member = False
        self._last_poll: float | None = None
        self._last_progress: float | None = None
        """The last poll, or the last retry while the log is away (the loop still turns)."""
        self._log_error: str | None = None
        self._stood_down: str | None = None

    def joined(self) -> None:
        self._member = True

    def left(self) -> None:
        self._member = False

    def polled(self, now: float) -> None:
        self._last_poll = self._last_progress = now
        self._log_error = None

    def log_away(self, error: str, now: float | None = None) -> None:
        self._log_error = error
        if now is not None:
            self._last_progress = now

    def stood_down(self, reason: str) -> None:
        self._stood_down = reason

    @property
    def standing_down(self) -> str | None:
        return self._stood_down

    def live(self, now: float) -> Verdict:
        if self._stood_down is not None or self._last_progress is None:
            return Verdict(True)
        idle_s = now - self._last_progress
        if idle_s > self._stall_s:
            return Verdict(False, (f"no progress for {idle_s:.0f} s (the loop is stuck)",))
        return Verdict(True)

    def ready(self, *reasons: str) -> Verdict:
        found = [r for r in reasons if r]
        if self._stood_down is not None:
            found.insert(0, f"stood down: {self._stood_down}")
        elif not self._member:
            found.insert(0, "not in its group")
        elif self._last_poll is None:
            found.insert(0, "has not polled yet")
        if self._log_error is not None:
            found.append(f"the log does not answer: {self._log_error}")
        return Verdict(not found, tuple(found))
