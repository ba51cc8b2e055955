"""TLS contexts and SASL credentials for aiokafka clients, from a `KafkaSecurity` (I/O: reads
the certificate, key and password files)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from engine.errors import ConfigurationError
from engine.log.kafka.connection import KafkaSecurity

__all__ = ["client_security", "librdkafka_config", "password_of"]

_MAX_PASSWORD_BYTES = 4096


def password_of(security: KafkaSecurity) -> str | None:
    """The SASL password, read from its file when it is given that way."""
    if security.password or not security.password_file:
        return security.password
    path = Path(security.password_file)
    try:
        data = path.read_bytes()[: _MAX_PASSWORD_BYTES + 1]
    except OSError as error:
        raise ConfigurationError(f"COUNTERSIGN_KAFKA_PASSWORD_FILE={path}: {error}") from error
    if len(data) > _MAX_PASSWORD_BYTES:
        raise ConfigurationError(f"COUNTERSIGN_KAFKA_PASSWORD_FILE={path}: too large")
    return data.decode("utf-8", errors="strict").strip()


def client_security(security: KafkaSecurity) -> dict[str, Any]:
    """aiokafka keyword arguments: `security_protocol`, the SSL context, the SASL settings."""
    args: dict[str, Any] = {"security_protocol": security.protocol}
    if security.tls:
        args["ssl_context"] = _ssl_context(security)
    if security.sasl:
        args |= {
            "sasl_mechanism": security.mechanism,
            "sasl_plain_username": security.username,
            "sasl_plain_password": password_of(security),
        }
    return args


def _ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=security.ca_file,
            certfile=security.cert_file,
            keyfile=security.key_file,
        )
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(
            f"TLS material (COUNTERSIGN_KAFKA_CA_FILE / CERT_FILE / KEY_FILE) unusable: {error}"
        ) from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = security.check_hostname
    return context


def librdkafka_config(security: KafkaSecurity) -> dict[str, str]:
    """The same security for a librdkafka (confluent-kafka) client, password file read."""
    return security.librdkafka(password_of(security))
