"""Errors of the events package.

EventsError
├── EncodeError          a value its schema cannot carry, or one a reader would refuse
├── CatalogError         the schema files, releases or upcasters disagree (a build mistake)
└── DecodeError          poison: the bytes are not a message we can read; dead-letter them
    ├── MessageTooLarge  over the record limit, refused before reading (also on encode)
    ├── UnknownSchema    a fingerprint (or registry id) no schema in the catalog has
    ├── InvalidField     a field breaks a documented limit (`field` names it)
    ├── SchemaRefused    a registry's writer schema that cannot be read as ours
    └── NewerSchema      written by a newer release: not corrupt, just not ours to read yet

Every failure of `Codec.decode*` is a DecodeError; every failure of `Codec.encode` is an
EncodeError or MessageTooLarge.
"""

from __future__ import annotations


class EventsError(Exception):
    """Base class for errors raised by the events package."""


class EncodeError(EventsError):
    """A message cannot be encoded: a field holds something its schema cannot carry."""


class CatalogError(EventsError):
    """The schema catalog is inconsistent: fix the files, not the data."""


class DecodeError(EventsError):
    """The bytes are not a message we can read. Terminal for that message: dead-letter it."""


class MessageTooLarge(DecodeError):
    """The message is larger than the configured limit; it is refused before any decoding."""


class UnknownSchema(DecodeError):
    """The message names a schema fingerprint that is not in the catalog."""


class InvalidField(DecodeError):
    """A field's value breaks a documented limit (length, nesting, range)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class SchemaRefused(DecodeError):
    """A writer schema (from a schema registry) that does not resolve to our reader schema."""


class NewerSchema(DecodeError):
    """The message was written by a newer release of Countersign, with a schema this release
    does not have. Not corruption: leave it to a newer worker (stop taking the partition or
    the run) rather than dead-lettering or quarantining it."""

    def __init__(self, message: str, *, release: int, schema: str) -> None:
        super().__init__(message)
        self.release = release
        self.schema = schema
