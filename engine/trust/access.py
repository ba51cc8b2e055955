"""The deployment's access rules: who holds which roles, who may start which agent, who may
cancel a run or lift a quarantine. Pure.

A directory file (JSON; `COUNTERSIGN_DIRECTORY`) owned by the deployment:

    {"principals": {"alice": ["support"], "bob": ["support-lead"], "oscar": ["operator"]},
     "may_start": {"refund": ["role:support", "bob"], "*": ["role:staff"]},
     "may_cancel": ["role:operator"],
     "may_lift": ["role:operator"]}

Entries are principals or `role:<name>`, compared in canonical form. Without `may_start`
any proven principal may start any agent; an agent not named uses `*` when given. A run may
always be cancelled by the principal who started it; others need `may_cancel` (default:
`role:operator`). Lifting a quarantine needs `may_lift` when it is given (else any proven
principal may: the act is recorded with its name). Roles
are the directory's (this file's merged with the App's) plus those a trusted issuer
asserted in the proof (`engine.trust.store`, `roles_claim`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.agent.authorization import EMPTY_DIRECTORY, ROLE_PREFIX, Directory
from engine.trust.gate import Proven
from engine.trust.principal import canonical_principal
from engine.trust.store import TrustError
from events.json import Json
from events.limits import MAX_ECHO_CHARS, clip

__all__ = ["Access"]

DEFAULT_OPERATORS = ("role:operator",)


@dataclass(frozen=True, slots=True)
class Access:
    directory: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    may_start: Mapping[str, tuple[str, ...]] | None = None
    may_cancel: tuple[str, ...] = DEFAULT_OPERATORS
    may_lift: tuple[str, ...] | None = None
    """None: any proven principal may lift (an operator's act, recorded with its name)."""

    def merged(self, base: Directory) -> Directory:
        """`base` (the App's directory, in code) with this file's roles added, in canonical
        form (directories are small: merged per decision)."""
        merged: dict[str, set[str]] = {k: set(v) for k, v in self.directory.items()}
        for principal, roles in base.items():
            merged.setdefault(canonical_principal(principal), set()).update(
                canonical_principal(r) for r in roles
            )
        return MappingProxyType({k: tuple(sorted(v)) for k, v in merged.items()})

    def directory_for(self, proven: Proven, base: Directory = EMPTY_DIRECTORY) -> Directory:
        """The directory to judge `proven`'s decision with: its claimed roles added."""
        merged = self.merged(base)
        if not proven.roles:
            return merged
        roles = frozenset(merged.get(proven.principal, ())) | proven.roles
        return MappingProxyType({**merged, proven.principal: tuple(sorted(roles))})

    def roles(self, proven: Proven, base: Directory = EMPTY_DIRECTORY) -> frozenset[str]:
        return frozenset(self.merged(base).get(proven.principal, ())) | proven.roles

    def start_refusal(self, proven: Proven, agent: str, base: Directory = EMPTY_DIRECTORY) -> str:
        if self.may_start is None:
            return ""
        allowed = self.may_start.get(agent, self.may_start.get("*"))
        if allowed is not None and self._listed(proven, allowed, base):
            return ""
        return f"{_echo(proven.principal)} may not start agent {_echo(agent)!r}"

    def cancel_refusal(
        self, proven: Proven, requester: str, base: Directory = EMPTY_DIRECTORY
    ) -> str:
        if proven.principal and proven.principal == canonical_principal(requester):
            return ""
        if self._listed(proven, self.may_cancel, base):
            return ""
        return (
            f"{_echo(proven.principal)} may not cancel this run: only who started it "
            f"({_echo(requester)}) or {', '.join(self.may_cancel) or 'nobody else'}"
        )

    def lift_refusal(self, proven: Proven, base: Directory = EMPTY_DIRECTORY) -> str:
        if self.may_lift is None or self._listed(proven, self.may_lift, base):
            return ""
        return (
            f"{_echo(proven.principal)} may not lift a quarantine "
            f"(needs {', '.join(self.may_lift or ()) or 'nobody'})"
        )

    def _listed(self, proven: Proven, entries: Sequence[str], base: Directory) -> bool:
        roles = self.roles(proven, base)
        for entry in entries:
            wanted = canonical_principal(entry)
            if wanted.startswith(ROLE_PREFIX):
                if wanted[len(ROLE_PREFIX) :] in roles:
                    return True
            elif proven.principal and wanted == proven.principal:
                return True
        return False

    @staticmethod
    def parse(data: Json) -> Access:
        if not isinstance(data, dict):
            raise TrustError("a directory file is a JSON object (see docs/signing.md)")
        unknown = set(data) - {"principals", "may_start", "may_cancel", "may_lift"}
        if unknown:
            raise TrustError(f"unknown directory fields: {', '.join(sorted(unknown))}")
        principals = data.get("principals", {})
        if not isinstance(principals, dict):
            raise TrustError("`principals` is an object: principal → list of roles")
        directory = {
            canonical_principal(p): tuple(sorted({canonical_principal(r) for r in _names(v, p)}))
            for p, v in principals.items()
        }
        start = data.get("may_start")
        if start is not None and not isinstance(start, dict):
            raise TrustError("`may_start` is an object: agent (or *) → principals and roles")
        return Access(
            MappingProxyType(directory),
            None
            if start is None
            else MappingProxyType({a: _names(v, f"may_start.{a}") for a, v in start.items()}),
            _names(data.get("may_cancel", list(DEFAULT_OPERATORS)), "may_cancel"),
            None if "may_lift" not in data else _names(data["may_lift"], "may_lift"),
        )


def _names(value: Json, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustError(f"{where}: a list of principals and role:<name> entries")
    return tuple(str(v) for v in value)


def _echo(value: str) -> str:
    return clip(value, MAX_ECHO_CHARS)
