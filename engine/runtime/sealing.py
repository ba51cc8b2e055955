"""A worker's personal-data sealing: keys made ready before events are written, personal
values sealed on their way to the log, restored histories opened (I/O: the key store).

The run's history in the worker's memory keeps the values in clear (the agent and its
tools need them); the log gets the sealed bytes, and the hash chain is over those bytes.
A history read back from the log is opened with the keys that still exist: a value whose
subject was erased reads as erased (`engine.privacy.events`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace

import structlog

from engine.agent.app import App
from engine.agent.personal import PersonalFields
from engine.core.live_run import LiveRun
from engine.errors import reason_of
from engine.privacy.events import (
    open_history,
    seal_payload,
    subjects_in,
    subjects_to_seal,
)
from engine.privacy.keys import ERASED_KEY, Keyring
from engine.privacy.sealing import NONCE_BYTES, erased, seal, withheld_in
from events.envelope import EventEnvelope
from events.errors import EncodeError
from events.json import Json, JsonObject
from events.run_events import RunEventPayload

__all__ = ["Sealer"]

log = structlog.get_logger(__name__)


class Sealer:
    def __init__(self, app: App, keyring: Keyring | None) -> None:
        self._app = app
        self.keyring = keyring
        """None: no key store; a tool with personal data cannot record its values."""

    def fields(self, tool: str) -> PersonalFields | None:
        spec = self._app.get_tool(tool)
        return spec.personal if spec is not None else None

    async def ready(self, run: LiveRun, payloads: Sequence[RunEventPayload]) -> None:
        """Create or load the keys that sealing `payloads` needs. A store that fails leaves
        them missing: sealing then refuses (the run fails, its values never go in clear)."""
        if self.keyring is None:
            return
        try:
            subjects = subjects_to_seal(payloads, run.history, self.fields)
            if subjects:
                await self.keyring.ensure(subjects)
        except EncodeError:
            return  # sealing the same payload says why, where the run's failure is recorded
        except Exception as exc:  # the key store is down: the values must not be written
            log.error("subject_keys_unavailable", run_id=run.run_id, error=reason_of(exc))

    def seal(self, run: LiveRun, envelope: EventEnvelope) -> tuple[EventEnvelope, EventEnvelope]:
        """(`envelope` as the log gets it: its personal values sealed, `envelope` as the
        worker keeps it). A value of an erased subject is erased in both: the worker's
        memory never holds what its log would not give back."""
        history = run.history
        erased_any = False

        def kept(subject: str, path: str, value: Json) -> Json:
            return erased(subject) if self._erased(subject) else value

        def one(subject: str, path: str, value: Json) -> Json:
            nonlocal erased_any
            key = self.keyring.key(subject) if self.keyring is not None else None
            if key == ERASED_KEY:
                erased_any = True
                return erased(subject)
            if key is None:
                raise EncodeError(
                    f"no key for data subject {subject!r} (is the subject-key store "
                    "configured and reachable?): its personal data is not written in clear"
                )
            nonce = os.urandom(NONCE_BYTES)
            return seal(key, nonce, subject=subject, run_id=run.run_id, path=path, value=value)

        sealed = seal_payload(envelope.payload, history, self.fields, one)
        if sealed is envelope.payload:
            return envelope, envelope
        logged = replace(envelope, payload=sealed)
        if not erased_any:
            return logged, envelope
        shown = seal_payload(envelope.payload, history, self.fields, kept)
        return logged, replace(envelope, payload=shown)

    def _erased(self, subject: str) -> bool:
        return self.keyring is not None and self.keyring.key(subject) == ERASED_KEY

    def refusal(self, tool: str, args: JsonObject) -> str | None:
        """Why `tool` must not run with `args`: they hold erased values, or it handles
        personal data of an erased subject (never processed again); None: it may run."""
        withheld = withheld_in(args)
        if withheld is not None:
            return f"its arguments hold personal data of subject {withheld!r}, erased"
        fields = self.fields(tool)
        subject = args.get(fields.subject) if fields is not None else None
        if isinstance(subject, str) and self._erased(subject):
            return f"it handles personal data of subject {subject!r}, erased"
        return None

    async def open_runs(self, runs: Iterable[LiveRun]) -> None:
        """Open the sealed values of restored runs, in place (their hashes stay the log's)."""
        runs = list(runs)
        subjects = subjects_in(e.payload for run in runs for e in run.history)
        if not subjects:
            return
        if self.keyring is not None:
            await self.keyring.load(subjects)
        for run in runs:
            run.replace_history(open_history(run.history, self._key))

    def _key(self, subject: str) -> bytes | None:
        key = self.keyring.key(subject) if self.keyring is not None else None
        return None if key == ERASED_KEY else key
