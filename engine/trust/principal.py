"""Principals in one canonical form, so that `Bob` and `bob` are one person. Pure."""

from __future__ import annotations

import unicodedata

__all__ = ["canonical_principal", "same_principal"]


def canonical_principal(name: str) -> str:
    """NFKC-normalised, case-folded, without surrounding white space: the form principals are
    stored in and compared in (directories, approver lists, requesters, voters)."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def same_principal(a: str, b: str) -> bool:
    return canonical_principal(a) == canonical_principal(b)
