"""deploy/: the Kubernetes example validates against the pinned API schemas and holds
together (selectors, probe ports, the CLI's own arguments); the Prometheus alert rules parse,
name only metrics the processes expose, and cover what issue 16 asks an operator to watch;
docker-compose probes the same endpoints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from countersign.cli import build_parser
from countersign.prometheus import PrometheusMetrics
from tests.k8s_schemas import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
RULES = ROOT / "deploy" / "prometheus" / "countersign-alerts.yaml"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in MANIFESTS:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _exposed_names() -> set[str]:
    """Metric family names (a counter's without `_total`)."""
    return {family.name for family in PrometheusMetrics("worker").registry.collect()}


def test_there_is_a_worker_a_budget_a_projector_and_a_topics_job() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in _documents())
    assert ("Deployment", "countersign-worker") in kinds
    assert ("Deployment", "countersign-projector") in kinds
    assert ("PodDisruptionBudget", "countersign-worker") in kinds
    assert ("Job", "countersign-topics") in kinds


@pytest.mark.parametrize("index", range(len(_documents())))
def test_each_manifest_is_valid_against_its_api_schema(index: int) -> None:
    document = _documents()[index]
    schema = SCHEMAS.get((document["apiVersion"], document["kind"]))
    assert schema is not None, f"no pinned schema for {document['apiVersion']} {document['kind']}"
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_the_schemas_refuse_a_misplaced_field() -> None:
    worker = next(d for d in _by_kind("Deployment") if d["metadata"]["name"].endswith("worker"))
    container = worker["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")  # a typo kubectl refuses
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(worker, SCHEMAS[("apps/v1", "Deployment")])


def test_selectors_match_their_pods_and_the_budget_covers_the_workers() -> None:
    for deployment in _by_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
    (budget,) = _by_kind("PodDisruptionBudget")
    worker = next(d for d in _by_kind("Deployment") if d["metadata"]["name"].endswith("worker"))
    assert budget["spec"]["selector"] == worker["spec"]["selector"]
    assert worker["spec"]["replicas"] > budget["spec"]["maxUnavailable"]


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_every_container_runs_a_command_the_cli_accepts_and_probes_its_health_port() -> None:
    parser = build_parser()
    for document in _documents():
        if document["kind"] in ("ConfigMap", "PodDisruptionBudget"):
            continue
        template = document["spec"]["template"]
        for container in template["spec"]["containers"]:
            args = container["args"]
            parsed = parser.parse_args(args)  # exits (fails the test) on an unknown flag
            probes = [container.get(p) for p in ("livenessProbe", "readinessProbe")]
            if document["kind"] == "Job":
                assert template["spec"]["restartPolicy"] in ("OnFailure", "Never")
                assert args[:2] == ["topics", "apply"]
                continue
            assert all(probes), f"{container['name']} has both probes"
            assert parsed.health_host == "0.0.0.0"  # the kubelet probes the pod's address
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["health"] == parsed.health_port == int(_flag(args, "--health-port"))
            paths = {probe["httpGet"]["path"] for probe in probes}
            assert paths == {"/livez", "/readyz"}
            for probe in probes:
                assert probe["httpGet"]["port"] in ports  # a named port of this container
            annotations = template["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(parsed.health_port)


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_alert_rules_parse_and_are_complete() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")")
        assert expr.count("[") == expr.count("]")
        assert re.search(r"(>|<|==|!=)\s*[\d.]+\s*$", expr), f"{rule['alert']}: no threshold"


def test_the_alert_rules_watch_lag_in_doubt_dead_letters_quarantine_and_stood_down() -> None:
    exprs = " ".join(rule["expr"] for rule in _rules())
    for watched in (
        "countersign_consumer_lag_seconds",
        "countersign_projector_lag_seconds",
        'countersign_runs{status="in_doubt"}',
        "countersign_dead_letters_total",
        'countersign_runs{status="quarantined"}',
        "countersign_stood_down",
    ):
        assert watched in exprs


def test_the_alert_rules_name_only_metrics_the_processes_expose() -> None:
    exposed = _exposed_names()
    for rule in _rules():
        for name in re.findall(r"\bcountersign_[a-z_]+", rule["expr"]):
            family = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert family in exposed, f"{rule['alert']} reads {name}, which nothing exposes"


def test_every_metric_is_documented() -> None:
    page = (ROOT / "docs" / "observability.md").read_text()
    for name in sorted(_exposed_names()):
        if name.startswith("countersign_"):
            assert f"`{name}" in page, f"{name} is not in docs/observability.md"


def test_docker_compose_probes_the_workers_and_the_projector() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("worker", "projector"):
        spec = compose["services"][service]
        args = spec["command"]
        port = _flag(args, "--health-port")
        assert _flag(args, "--health-host") == "0.0.0.0"
        assert f"127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"])
