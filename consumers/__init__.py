"""Processes and clients fed by or feeding topics other than the projections."""

from consumers.publisher import CommandPublisher, OutcomeTimeout

__all__ = ["CommandPublisher", "OutcomeTimeout"]
