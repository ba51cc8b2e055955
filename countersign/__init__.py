"""The composition root: settings, logging, wiring and the `countersign` command line."""

__all__: list[str] = []
