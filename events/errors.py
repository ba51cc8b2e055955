"""Errors of the events package.

EventsError
└── DecodeError          poison: the bytes are not a message we can read; dead-letter them
    ├── MessageTooLarge
    └── UnknownSchema    a fingerprint no schema in the catalog has
"""

from __future__ import annotations


class EventsError(Exception):
    """Base class for errors raised by the events package."""


class EncodeError(EventsError):
    """A message cannot be encoded: a field holds something its schema cannot carry."""


class DecodeError(EventsError):
    """The bytes are not a message we can read. Terminal for that message: dead-letter it."""


class MessageTooLarge(DecodeError):
    """The message is larger than the configured limit; it is refused before any decoding."""


class UnknownSchema(DecodeError):
    """The message names a schema fingerprint that is not in the catalog."""
