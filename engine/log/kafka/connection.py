"""Where and how a process connects to Kafka: bootstrap, TLS and SASL. Pure.

Read from `COUNTERSIGN_KAFKA_*` variables (`KafkaSecurity.from_env`), given to every client
the adapter makes (producers, consumers, admin) and, as librdkafka settings, to the
confluent-kafka clients of the tests:

    COUNTERSIGN_KAFKA_SECURITY_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    COUNTERSIGN_KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default with SASL) | SCRAM-SHA-256
    COUNTERSIGN_KAFKA_USERNAME            the SASL principal
    COUNTERSIGN_KAFKA_PASSWORD            its password (or COUNTERSIGN_KAFKA_PASSWORD_FILE)
    COUNTERSIGN_KAFKA_CA_FILE             PEM bundle the brokers' certificates chain to
    COUNTERSIGN_KAFKA_CERT_FILE           client certificate (PEM), for mutual TLS
    COUNTERSIGN_KAFKA_KEY_FILE            its private key (PEM)
    COUNTERSIGN_KAFKA_TLS_CHECK_HOSTNAME  true (default) | false

Values are checked here, so a typo is refused at start with the variable's name, not met
later as a handshake failure. PLAIN is not offered: it sends the password itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

__all__ = ["Connection", "KafkaSecurity", "Mechanism", "Protocol"]

Protocol: TypeAlias = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism: TypeAlias = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]
_PREFIX = "COUNTERSIGN_KAFKA_"
_MAX_VALUE = 4096


@dataclass(frozen=True, kw_only=True, slots=True)
class KafkaSecurity:
    protocol: Protocol = "PLAINTEXT"
    mechanism: Mechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in get_args(Protocol):
            raise ValueError(
                f"{_PREFIX}SECURITY_PROTOCOL={self.protocol!r}: use one of "
                f"{', '.join(get_args(Protocol))}"
            )
        if self.mechanism not in get_args(Mechanism):
            raise ValueError(
                f"{_PREFIX}SASL_MECHANISM={self.mechanism!r}: use one of "
                f"{', '.join(get_args(Mechanism))}"
            )
        if self.sasl and not (self.username and (self.password or self.password_file)):
            raise ValueError(
                f"{_PREFIX}SECURITY_PROTOCOL={self.protocol} needs {_PREFIX}USERNAME "
                f"and {_PREFIX}PASSWORD (or {_PREFIX}PASSWORD_FILE)"
            )
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(f"mutual TLS needs both {_PREFIX}CERT_FILE and {_PREFIX}KEY_FILE")
        if (self.cert_file or self.ca_file) and not self.tls:
            raise ValueError(
                f"{_PREFIX}CA_FILE/CERT_FILE are set but {_PREFIX}SECURITY_PROTOCOL="
                f"{self.protocol} does not use TLS: use SSL or SASL_SSL"
            )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        def value(name: str) -> str | None:
            found = env.get(_PREFIX + name) or None
            if found is not None and (len(found) > _MAX_VALUE or "\0" in found):
                raise ValueError(f"{_PREFIX}{name}: not a usable value")
            return found

        check = (value("TLS_CHECK_HOSTNAME") or "true").lower()
        if check not in ("true", "false"):
            raise ValueError(f"{_PREFIX}TLS_CHECK_HOSTNAME={check!r}: use true or false")
        return cls(
            protocol=(value("SECURITY_PROTOCOL") or "PLAINTEXT").upper(),  # type: ignore[arg-type]
            mechanism=(value("SASL_MECHANISM") or "SCRAM-SHA-512").upper(),  # type: ignore[arg-type]
            username=value("USERNAME"),
            password=value("PASSWORD"),
            password_file=value("PASSWORD_FILE"),
            ca_file=value("CA_FILE"),
            cert_file=value("CERT_FILE"),
            key_file=value("KEY_FILE"),
            check_hostname=check == "true",
        )

    def as_env(self) -> dict[str, str]:
        """The variables that give another process this security (for child processes)."""
        named = {
            "SECURITY_PROTOCOL": self.protocol,
            "SASL_MECHANISM": self.mechanism if self.sasl else None,
            "USERNAME": self.username,
            "PASSWORD": self.password,
            "PASSWORD_FILE": self.password_file,
            "CA_FILE": self.ca_file,
            "CERT_FILE": self.cert_file,
            "KEY_FILE": self.key_file,
            "TLS_CHECK_HOSTNAME": None if self.check_hostname else "false",
        }
        return {_PREFIX + name: value for name, value in named.items() if value is not None}

    def librdkafka(self, password: str | None = None) -> dict[str, str]:
        """The same settings for librdkafka (confluent-kafka). `password`: read from
        `password_file` by the caller when that is how it is given."""
        config: dict[str, str] = {"security.protocol": self.protocol}
        if self.sasl:
            config |= {
                "sasl.mechanism": self.mechanism,
                "sasl.username": self.username or "",
                "sasl.password": password or self.password or "",
            }
        if self.tls:
            if self.ca_file:
                config["ssl.ca.location"] = self.ca_file
            if self.cert_file and self.key_file:
                config["ssl.certificate.location"] = self.cert_file
                config["ssl.key.location"] = self.key_file
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.check_hostname else "none"
            )
        return config


@dataclass(frozen=True, slots=True)
class Connection:
    """A cluster address and the security to reach it with."""

    bootstrap: str
    security: KafkaSecurity = KafkaSecurity()

    @classmethod
    def of(cls, target: str | Connection) -> Connection:
        return target if isinstance(target, Connection) else cls(target)
