"""The secure local broker's material: a CA, certificates, SCRAM users, broker settings (I/O).

`countersign kafka up --secure` gives the local broker three listeners on 127.0.0.1:
- CLIENTS, SASL_SSL with SCRAM-SHA-512: what the processes use, one principal per role;
- MTLS, SSL with client certificates required: the brokers' own listener (the certificate's CN
  is the principal: `broker`, a super user) and mutual TLS for clients that prefer it
  (each role also gets a certificate whose CN is its name, so the same ACLs apply);
- CONTROLLER, SSL with client certificates required.
The StandardAuthorizer allows nothing that no ACL allows. SCRAM users are created when the
storage is formatted (`--add-scram`), so they exist before the first client connects.

Under `<state dir>/secure/`: `ca.pem`, `broker-keystore.pem`, `<role>.pem` / `<role>-key.pem`,
`<role>.password` (0600) and `<role>.env` / `<role>-mtls.env`: the `COUNTERSIGN_KAFKA_*`
variables a process of that role needs (`set -a; . <role>.env; set +a`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.log.kafka.acls import ROLES
from engine.log.kafka.connection import KafkaSecurity, Mechanism

__all__ = ["ADMIN", "BROKER", "USERS", "SecureMaterial"]

BROKER = "broker"
"""The brokers' own principal (certificate CN): a super user."""
ADMIN = "admin"
"""The principal that creates topics and ACLs: a super user."""
USERS = (ADMIN, *ROLES)
_MECHANISM: Mechanism = "SCRAM-SHA-512"
_VALID_DAYS = 825


@dataclass(frozen=True)
class SecureMaterial:
    """The files of one secure local cluster."""

    dir: Path

    @classmethod
    def create_once(cls, directory: Path) -> SecureMaterial:
        """Make the CA, the certificates and the passwords, unless they exist already."""
        material = cls(directory)
        if not (directory / "credentials.json").exists():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
            material._generate()
        return material

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    def password(self, user: str) -> str:
        stored: dict[str, str] = json.loads((self.dir / "credentials.json").read_text())
        return stored[user]

    def security(self, user: str, *, mtls: bool = False) -> KafkaSecurity:
        """How `user` connects: SASL_SSL with SCRAM, or mutual TLS with its certificate."""
        if mtls:
            return KafkaSecurity(
                protocol="SSL",
                ca_file=str(self.ca_file),
                cert_file=str(self.dir / f"{user}.pem"),
                key_file=str(self.dir / f"{user}-key.pem"),
            )
        return KafkaSecurity(
            protocol="SASL_SSL",
            mechanism=_MECHANISM,
            username=user,
            password_file=str(self.dir / f"{user}.password"),
            ca_file=str(self.ca_file),
        )

    def scram_arguments(self) -> list[str]:
        """`StorageTool format` arguments creating every user."""
        out = []
        for user in USERS:
            out += ["--add-scram", f"{_MECHANISM}=[name={user},password={self.password(user)}]"]
        return out

    def write_env_files(self, bootstrap: str, mtls_bootstrap: str) -> None:
        for user in USERS:
            for suffix, address, mtls in (("", bootstrap, False), ("-mtls", mtls_bootstrap, True)):
                lines = {"COUNTERSIGN_KAFKA_BOOTSTRAP": address, **self.security(user, mtls=mtls)
                         .as_env()}  # fmt: skip
                path = self.dir / f"{user}{suffix}.env"
                path.write_text("".join(f"{name}={value}\n" for name, value in lines.items()))

    def broker_properties(self, client: int, mtls: int, controller: int) -> dict[str, str]:
        keystore, truststore = self.dir / "broker-keystore.pem", self.ca_file
        return {
            "listeners": f"CLIENTS://127.0.0.1:{client},MTLS://127.0.0.1:{mtls},"
            f"CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"CLIENTS://127.0.0.1:{client},MTLS://127.0.0.1:{mtls}",
            "listener.security.protocol.map": "CLIENTS:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "MTLS",
            "controller.listener.names": "CONTROLLER",
            "sasl.enabled.mechanisms": _MECHANISM,
            "listener.name.clients.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(truststore),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([a-zA-Z0-9._-]+)$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER};User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _generate(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate("countersign local CA", ca_key, ca_key, None, ca=True)
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        issuer = (ca_key, ca_cert)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(BROKER, key, issuer[0], issuer[1], ca=False)
        _write_private(self.dir / "broker-keystore.pem", _pem_key(key) + _pem(cert) + _pem(ca_cert))
        for user in USERS:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _certificate(user, key, issuer[0], issuer[1], ca=False)
            (self.dir / f"{user}.pem").write_bytes(_pem(cert))
            _write_private(self.dir / f"{user}-key.pem", _pem_key(key))
        passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        for user, password in passwords.items():
            _write_private(self.dir / f"{user}.password", password.encode())
        _write_private(self.dir / "credentials.json", json.dumps(passwords).encode())


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    *,
    ca: bool,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
