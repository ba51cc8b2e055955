"""A pinned subset of the Kubernetes 1.30 API schemas (apps/v1 Deployment, policy/v1
PodDisruptionBudget, batch/v1 Job, v1 ConfigMap), as JSON Schema, for validating
deploy/kubernetes/ without a cluster.

Written from the API reference (https://kubernetes.io/docs/reference/kubernetes-api/) for the
fields the example uses and their neighbours. Every object is closed (`additionalProperties:
false`), so a misspelt or misplaced field is refused, as `kubectl apply --validate=strict`
would; fields outside the subset are refused too: add them here, from the reference, when
the example needs them.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
INT_OR_STRING: Schema = {"type": ["integer", "string"]}
LABELS: Schema = {"type": "object", "additionalProperties": STRING}
QUANTITY: Schema = {"type": ["string", "integer", "number"]}
DNS_LABEL: Schema = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}


def closed(required: list[str], **properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


METADATA = closed(
    ["name"],
    name=DNS_LABEL,
    namespace=DNS_LABEL,
    labels=LABELS,
    annotations=LABELS,
)
TEMPLATE_METADATA = closed([], labels=LABELS, annotations=LABELS)
SELECTOR = closed(["matchLabels"], matchLabels=LABELS)
PORT_REF: Schema = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, DNS_LABEL]}
PROBE = closed(
    [],
    httpGet=closed(["port"], path=STRING, port=PORT_REF, scheme={"enum": ["HTTP", "HTTPS"]}),
    tcpSocket=closed(["port"], port=PORT_REF),
    initialDelaySeconds=INT,
    periodSeconds={"type": "integer", "minimum": 1},
    timeoutSeconds={"type": "integer", "minimum": 1},
    successThreshold={"type": "integer", "minimum": 1},
    failureThreshold={"type": "integer", "minimum": 1},
)
KEY_REF = closed(["key"], name=STRING, key=STRING, optional=BOOL)
ENV_VAR = closed(
    ["name"],
    name=STRING,
    value=STRING,
    valueFrom=closed([], secretKeyRef=KEY_REF, configMapKeyRef=KEY_REF),
)
ENV_FROM = closed(
    [],
    prefix=STRING,
    configMapRef=closed(["name"], name=STRING, optional=BOOL),
    secretRef=closed(["name"], name=STRING, optional=BOOL),
)
RESOURCES = closed(
    [],
    requests={"type": "object", "additionalProperties": QUANTITY},
    limits={"type": "object", "additionalProperties": QUANTITY},
)
CONTAINER = closed(
    ["name", "image"],
    name=DNS_LABEL,
    image=STRING,
    imagePullPolicy={"enum": ["Always", "IfNotPresent", "Never"]},
    command=array(STRING),
    args=array(STRING),
    env=array(ENV_VAR),
    envFrom=array(ENV_FROM),
    ports=array(
        closed(
            ["containerPort"],
            name={"type": "string", "maxLength": 15},
            containerPort={"type": "integer", "minimum": 1, "maximum": 65535},
            protocol={"enum": ["TCP", "UDP", "SCTP"]},
        )
    ),
    livenessProbe=PROBE,
    readinessProbe=PROBE,
    startupProbe=PROBE,
    resources=RESOURCES,
)
POD_SPEC = closed(
    ["containers"],
    containers={**array(CONTAINER), "minItems": 1},
    restartPolicy={"enum": ["Always", "OnFailure", "Never"]},
    terminationGracePeriodSeconds=INT,
    serviceAccountName=DNS_LABEL,
)
POD_TEMPLATE = closed(["spec"], metadata=TEMPLATE_METADATA, spec=POD_SPEC)


def kind(api_version: str, name: str, spec: Schema | None, **extra: Schema) -> Schema:
    properties: dict[str, Schema] = {
        "apiVersion": {"const": api_version},
        "kind": {"const": name},
        "metadata": METADATA,
        **extra,
    }
    if spec is not None:
        properties["spec"] = spec
    return closed(["apiVersion", "kind", "metadata", *(["spec"] if spec else [])], **properties)


SCHEMAS: dict[tuple[str, str], Schema] = {
    ("v1", "ConfigMap"): kind("v1", "ConfigMap", None, data=LABELS),
    ("apps/v1", "Deployment"): kind(
        "apps/v1",
        "Deployment",
        closed(
            ["selector", "template"],
            replicas={"type": "integer", "minimum": 0},
            selector=SELECTOR,
            template=POD_TEMPLATE,
            strategy=closed(
                [],
                type={"enum": ["RollingUpdate", "Recreate"]},
                rollingUpdate=closed([], maxSurge=INT_OR_STRING, maxUnavailable=INT_OR_STRING),
            ),
            minReadySeconds=INT,
            revisionHistoryLimit=INT,
        ),
    ),
    ("policy/v1", "PodDisruptionBudget"): kind(
        "policy/v1",
        "PodDisruptionBudget",
        {
            **closed(
                ["selector"],
                selector=SELECTOR,
                minAvailable=INT_OR_STRING,
                maxUnavailable=INT_OR_STRING,
            ),
            "oneOf": [{"required": ["minAvailable"]}, {"required": ["maxUnavailable"]}],
        },
    ),
    ("batch/v1", "Job"): kind(
        "batch/v1",
        "Job",
        closed(
            ["template"],
            template=POD_TEMPLATE,
            backoffLimit=INT,
            ttlSecondsAfterFinished=INT,
            activeDeadlineSeconds=INT,
        ),
    ),
}
