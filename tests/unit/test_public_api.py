"""The public names of `events` and `engine` are a contract: changing them is deliberate."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "events": {
        "COMMAND_TYPES",
        "DECISION_KINDS",
        "NOTICE_TYPES",
        "RUN_EVENT_TYPES",
        "ActionNotified",
        "ApprovalRequest",
        "ApprovalRequested",
        "CancelRun",
        "Catalog",
        "CatalogError",
        "Codec",
        "Command",
        "DecisionAccepted",
        "DecisionHeld",
        "DecisionOutcome",
        "DecisionRejected",
        "DecodeError",
        "EncodeError",
        "EventEnvelope",
        "EventsError",
        "GateEvaluated",
        "InterruptEscalated",
        "InterruptExpired",
        "InterruptRaised",
        "InvalidField",
        "Json",
        "JsonObject",
        "MessageTooLarge",
        "ModelCalled",
        "NewerSchema",
        "Notice",
        "RunCancelled",
        "RunCompleted",
        "RunEventPayload",
        "RunFailed",
        "ResumeRun",
        "RunParked",
        "RunResumed",
        "RunStarted",
        "SchemaRefused",
        "StartRun",
        "SubmitDecision",
        "ToolCallCompleted",
        "ToolCallFailed",
        "ToolCallScheduled",
        "UnknownSchema",
        "Upcaster",
        "ValueRecorded",
        "VoteRecorded",
        "hash_encoded",
    },
    "engine": {
        "DATA_SUBJECT",
        "PERSONAL",
        "Advance",
        "AgentProtocolError",
        "AgentSpec",
        "Always",
        "App",
        "Confidence",
        "ConfigurationError",
        "Decision",
        "EngineError",
        "Escalation",
        "ExecuteTool",
        "Fenced",
        "Gate",
        "Level",
        "Limit",
        "LogError",
        "Never",
        "NonDeterminismError",
        "Policy",
        "Replayer",
        "RunContext",
        "Services",
        "ToolNotOk",
        "ToolResult",
        "ToolSpec",
        "TransientLogError",
        "When",
        "Worker",
        "WorkerSettings",
    },
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_public_names_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PINNED[package]
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name} is exported but missing"


def test_the_events_package_imports_nothing_of_ours() -> None:
    import ast
    import pathlib

    ours = {"engine", "projections", "consumers", "countersign", "examples"}
    for path in pathlib.Path("events").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in ours, f"{path} imports {node.module}"


def test_the_engine_does_not_import_projections_or_the_cli() -> None:
    import ast
    import pathlib

    for path in pathlib.Path("engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                root = node.module.split(".")[0]
                assert root not in {"projections", "countersign"}, f"{path} imports {node.module}"
