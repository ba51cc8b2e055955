"""Who may decide: approver lists of principals and `role:<name>`, a principal→roles directory,
and approval levels (who, and how many of them: k-of-n). Pure.

    App(directory={"alice": ["support"], "bob": ["support-lead"], "carol": ["finance"]},
        ladders={"critical": (Level(("role:support-lead",)),
                              Level(("role:finance",), quorum=2),
                              Level(("dave",)))})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from engine.errors import ConfigurationError
from engine.trust.principal import canonical_principal
from events.json import Json
from events.limits import MAX_ECHO_CHARS, clip

ROLE_PREFIX = "role:"
Directory: TypeAlias = Mapping[str, Sequence[str]]
"""principal → the roles it holds."""
EMPTY_DIRECTORY: Directory = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Level:
    """One level of an approval: who may decide (empty = anyone but the requester) and how
    many distinct approvals it takes (`quorum`, the k of k-of-n)."""

    approvers: tuple[str, ...] = ()
    quorum: int = 1

    def __post_init__(self) -> None:
        if self.quorum < 1:
            raise ConfigurationError(f"a level needs a quorum of at least 1, not {self.quorum}")
        named = [a for a in self.approvers if not a.startswith(ROLE_PREFIX)]
        roles = [a for a in self.approvers if a.startswith(ROLE_PREFIX)]
        if not roles and named and self.quorum > len(named):
            raise ConfigurationError(
                f"a quorum of {self.quorum} can never be met by {len(named)} named approvers"
            )

    def to_json(self) -> Json:
        return {"approvers": list(self.approvers), "quorum": self.quorum}

    @staticmethod
    def from_json(value: Json) -> Level:
        if not isinstance(value, dict):
            raise ValueError(f"a level is an object, not {value!r}")
        approvers = value.get("approvers") or []
        quorum = value.get("quorum", 1)
        if not isinstance(approvers, list) or not isinstance(quorum, int):
            raise ValueError(f"a level has a list of approvers and a whole quorum: {value!r}")
        return Level(tuple(str(a) for a in approvers), quorum)


def levels_to_json(levels: Sequence[Level]) -> Json:
    return [level.to_json() for level in levels]


def levels_from_json(value: Json) -> tuple[Level, ...]:
    if not isinstance(value, list) or not value:
        return (Level(),)
    return tuple(Level.from_json(item) for item in value)


def roles_of(principal: str, directory: Directory) -> frozenset[str]:
    """The roles `principal` holds, all compared in canonical form (`Bob` is `bob`)."""
    found = directory.get(principal)
    if found is None:
        wanted = canonical_principal(principal)
        found = next((v for k, v in directory.items() if canonical_principal(k) == wanted), ())
    return frozenset(canonical_principal(role) for role in found)


def is_listed(principal: str, approvers: Sequence[str], directory: Directory) -> bool:
    """Whether `principal` is one of `approvers` (by name or by a role it holds), compared
    in canonical form."""
    if not approvers:
        return True
    roles = roles_of(principal, directory)
    who = canonical_principal(principal)
    for entry in approvers:
        wanted = canonical_principal(entry)
        if wanted.startswith(ROLE_PREFIX):
            if wanted[len(ROLE_PREFIX) :] in roles:
                return True
        elif wanted == who:
            return True
    return False


def among(principal: str, principals: Sequence[str]) -> bool:
    """Whether `principal` is one of `principals`, in canonical form."""
    who = canonical_principal(principal)
    return any(canonical_principal(p) == who for p in principals)


def refusal_for_principal(
    principal: str,
    *,
    approvers: Sequence[str],
    excluded: Sequence[str],
    requester: str,
    separation_of_duties: bool,
    directory: Directory,
) -> str:
    """Why `principal` may not take this decision, or "" when it may (quoted clipped)."""
    who = clip(principal, MAX_ECHO_CHARS)
    if separation_of_duties and among(principal, (requester,)):
        return f"{who} started this run and may not approve its requests"
    if among(principal, excluded):
        return (
            f"{who} already approved an earlier level of this call; "
            "each level needs a different person"
        )
    if not is_listed(principal, approvers, directory):
        return f"{who} is not among the approvers of this request ({', '.join(approvers)})"
    return ""
