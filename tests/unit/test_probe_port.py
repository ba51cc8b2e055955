"""The probe port answers /livez, /readyz and /metrics from what the process reports, and
refuses what is not a probe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from countersign.health_server import Probes, serving
from countersign.prometheus import CONTENT_TYPE, PrometheusMetrics
from engine.core.census import RunCensus
from engine.core.health import Verdict
from engine.telemetry import PartitionLag, ProjectorGauges, WorkerGauges
from tests.scrape import get, scrape, value


@dataclass
class Watched:
    metrics: PrometheusMetrics
    alive: Verdict = field(default_factory=lambda: Verdict(True))
    readiness: Verdict = field(
        default_factory=lambda: Verdict(False, ("partitions not restored yet: [3]",))
    )
    lags: list[tuple[PartitionLag, ...]] = field(default_factory=list)
    failing: bool = False

    def live(self) -> Verdict:
        return self.alive

    async def ready(self) -> Verdict:
        return self.readiness

    async def sample(self) -> None:
        if self.failing:
            raise RuntimeError("the log does not answer")
        lag = self.lags.pop(0) if self.lags else ()
        self.metrics.worker_gauges(WorkerGauges(RunCensus(live=2, waiting=1), lag, False))


@pytest.fixture
async def port() -> AsyncIterator[tuple[int, Probes, PrometheusMetrics]]:
    metrics = PrometheusMetrics("worker")
    probes = Probes(metrics.exposition, CONTENT_TYPE)
    async with serving(probes, "127.0.0.1", 0) as bound:
        yield bound, probes, metrics


async def test_before_the_worker_exists_it_is_alive_and_starting(
    port: tuple[int, Probes, PrometheusMetrics],
) -> None:
    bound, _, _ = port
    assert await get(bound, "/livez") == (200, b"ok\n")
    assert await get(bound, "/readyz") == (503, b"starting\n")


async def test_readiness_says_why_not_and_flips(
    port: tuple[int, Probes, PrometheusMetrics],
) -> None:
    bound, probes, metrics = port
    watched = Watched(metrics)
    probes.watched = watched
    assert await get(bound, "/readyz") == (503, b"partitions not restored yet: [3]\n")
    watched.readiness = Verdict(True)
    assert await get(bound, "/readyz") == (200, b"ok\n")
    watched.alive = Verdict(False, ("no poll for 700 s (the loop is stuck)",))
    assert (await get(bound, "/livez"))[0] == 503


async def test_metrics_count_and_a_partition_that_moved_away_stops_being_reported(
    port: tuple[int, Probes, PrometheusMetrics],
) -> None:
    bound, probes, metrics = port
    watched = Watched(metrics)
    watched.lags = [(PartitionLag(0, 5, 1.5), PartitionLag(3, 0, 0.0)), (PartitionLag(3, 2, 0.2),)]
    probes.watched = watched
    metrics.command("accepted")
    metrics.command("accepted")
    metrics.command("dead_lettered")
    metrics.dead_lettered(1)
    metrics.decision_continued(0.02)
    metrics.restored(0.5, 40)
    first = await scrape(bound)
    assert value(first, "countersign_commands_total", outcome="accepted") == 2
    assert value(first, "countersign_commands_total", outcome="dead_lettered") == 1
    assert value(first, "countersign_dead_letters_total") == 1
    assert value(first, "countersign_decision_continued_seconds_count") == 1
    assert value(first, "countersign_restored_events_total") == 40
    assert value(first, "countersign_runs", status="waiting") == 1
    assert value(first, "countersign_consumer_lag_records", partition="0") == 5
    assert value(first, "countersign_consumer_lag_seconds", partition="0") == 1.5
    assert value(first, "countersign_stood_down", role="worker") == 0
    second = await scrape(bound)
    assert ("countersign_consumer_lag_records", frozenset({("partition", "0")})) not in second
    assert value(second, "countersign_consumer_lag_records", partition="3") == 2


async def test_a_sample_that_fails_still_serves_the_counters(
    port: tuple[int, Probes, PrometheusMetrics],
) -> None:
    bound, probes, metrics = port
    probes.watched = Watched(metrics, failing=True)
    metrics.command("applied")
    assert value(await scrape(bound), "countersign_commands_total", outcome="applied") == 1


def test_the_projector_gauges_report_lag_and_standing_down() -> None:
    metrics = PrometheusMetrics("projector")
    metrics.projector_gauges(ProjectorGauges((PartitionLag(1, 9, 3.0),), True))
    metrics.projected(10, 1, 0.01)
    text = metrics.exposition().decode()
    assert 'countersign_projector_lag_records{partition="1"} 9.0' in text
    assert 'countersign_stood_down{role="projector"} 1.0' in text
    assert "countersign_projected_events_total 10.0" in text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GET /secret HTTP/1.1\r\n\r\n", 404),
        (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n", 404),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /livez SMTP/1.0\r\n\r\n", 400),
        (b"GET /livez HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 0),  # too long: closed
        (b"GET /livez HTTP/1.1\r\n", 0),  # the head never ends: closed when the client stops
    ],
)
async def test_what_is_not_a_probe_is_refused(
    port: tuple[int, Probes, PrometheusMetrics], raw: bytes, status: int
) -> None:
    bound, _, _ = port
    if raw.endswith(b"HTTP/1.1\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", bound)
        writer.write(raw)
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        return
    assert (await get(bound, "/", raw))[0] == status
    assert await get(bound, "/livez") == (200, b"ok\n")  # and it goes on answering


async def test_head_answers_without_a_body(port: tuple[int, Probes, PrometheusMetrics]) -> None:
    bound, _, _ = port
    status, body = await get(bound, "/", b"HEAD /livez HTTP/1.1\r\n\r\n")
    assert (status, body) == (200, b"")


async def test_countersign_probe_reads_the_port_and_refuses_junk_answers(
    port: tuple[int, Probes, PrometheusMetrics],
) -> None:
    from countersign.cli_probe import fetch

    bound, _, _ = port
    assert await fetch("127.0.0.1", bound, "/livez") == (200, b"ok\n")
    assert (await fetch("127.0.0.1", bound, "/readyz"))[0] == 503

    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\xff not http at all")
        writer.close()

    server = await asyncio.start_server(junk, "127.0.0.1", 0)
    junk_port = server.sockets[0].getsockname()[1]
    try:
        assert await fetch("127.0.0.1", junk_port, "/readyz") == (0, b"")
    finally:
        server.close()
        await server.wait_closed()
    assert await fetch("127.0.0.1", junk_port, "/readyz") == (0, b"")  # nothing listens now


async def test_a_process_of_two_parts_is_ready_when_both_are_and_says_which_is_not() -> None:
    from countersign.health_server import AllOf

    worker = Watched(PrometheusMetrics("worker", "projector"))
    projector = Watched(worker.metrics, readiness=Verdict(False, ("the database does not answer",)))
    both = AllOf(worker=worker, projector=projector)
    verdict = await both.ready()
    assert not verdict.ok
    assert verdict.reasons == (
        "worker: partitions not restored yet: [3]",
        "projector: the database does not answer",
    )
    worker.readiness = projector.readiness = Verdict(True)
    assert (await both.ready()).ok
    assert both.live().ok
    projector.alive = Verdict(False, ("stuck",))
    assert both.live().reasons == ("projector: stuck",)
    worker.lags = [(PartitionLag(0, 1, 0.0),)]
    projector.lags = [(PartitionLag(1, 1, 0.0),)]
    await both.sample()
    assert worker.lags == projector.lags == []  # each part was sampled
