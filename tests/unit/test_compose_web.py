"""docker-compose.yml's web inbox and notifier: their commands are ones the CLI takes, with
files the image holds, and they agree on the address people open (no Docker needed here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from countersign.cli import build_parser
from countersign.cli_notify import read_routing, run_notify
from countersign.cli_serve import app_directory, run_serve

ROOT = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/app/"  # the Dockerfile's WORKDIR, where the repository's files are copied


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return found


def command(service: str) -> list[str]:
    found: list[str] = services()[service]["command"]
    return found


def env(service: str, name: str) -> str:
    return str(services()[service]["environment"][name])


def test_the_web_service_serves_an_app_the_image_holds_on_every_interface() -> None:
    args = build_parser().parse_args(command("web"))
    assert args.handler is run_serve
    assert app_directory(args.app)  # the App imports, and lends its directory
    assert env("web", "COUNTERSIGN_WEB_HOST") == "0.0.0.0"
    assert "8766:8766" in services()["web"]["ports"]
    assert "/health" in " ".join(services()["web"]["healthcheck"]["test"])
    assert env("web", "COUNTERSIGN_HOME") == "/data"  # its users file and key, on the volume


def test_the_notifier_reads_a_routing_file_the_image_holds_and_links_to_the_inbox() -> None:
    args = build_parser().parse_args(command("notifier"))
    assert args.handler is run_notify
    assert args.routing.startswith(IMAGE_ROOT)
    routing = read_routing(str(ROOT / args.routing.removeprefix(IMAGE_ROOT)))
    assert routing.channels
    assert env("notifier", "COUNTERSIGN_WEB_URL") == env("web", "COUNTERSIGN_WEB_URL")
    assert env("notifier", "COUNTERSIGN_SMTP_HOST") in services()


def test_the_cli_lines_at_the_top_are_commands_the_cli_takes() -> None:
    """Before `up`: the key the web inbox signs with (workers on Kafka refuse unsigned
    commands; the services share the home that holds it and the trust file) and a user."""
    header = (ROOT / "docker-compose.yml").read_text().split("\nx-", 1)[0]
    lines = [
        line.split("# ", 1)[0] for line in re.findall(r"docker compose run --rm cli (.*)", header)
    ]
    parsed = [build_parser().parse_args(shlex.split(line)) for line in lines]
    assert [args.handler.__name__ for args in parsed[:2]] == ["create_key", "run_users"]
    assert parsed[0].default
