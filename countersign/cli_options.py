"""Options several commands share, spelled the same everywhere."""

from __future__ import annotations

from typing import Any


def json_logs(parser: Any) -> None:
    """A long-running process's machine-readable output is its log: `--json` makes it JSON."""
    parser.add_argument("--json", action="store_true", help="log JSON lines (--log-format json)")


def wait_option(parser: Any, what: str, *, default: float | None = None) -> None:
    """`--wait [SECONDS]`: how long to wait for `what` (30 s when no number is given)."""
    parser.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=30.0,
        default=default,
        metavar="SECONDS",
        help=f"wait (30 s by default) {what}",
    )
