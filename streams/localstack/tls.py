"""A private CA and a server certificate for the secured local stack.

Generated once per state dir with the ``cryptography`` library: the CA
(``ca.pem``), and one certificate for ``localhost`` / ``127.0.0.1`` signed by
it (``server.pem`` + ``server.key``) that the Kafka brokers and ClickHouse
present. Clients trust ``ca.pem`` only, so a client given another CA fails
verification, as it would against a real deployment.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one secured stack."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        """The server certificate followed by the CA (a full chain)."""
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        """The server's private key, PKCS#8, unencrypted (readable by its owner only)."""
        return self.folder / "server.key"

    def exist(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.server_cert, self.server_key))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_tls_files(folder: Path, common_name: str = "lfr-stream local CA") -> TlsFiles:
    """Create the CA and the server certificate unless they exist; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = TlsFiles(folder)
    if files.exist():
        return files
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # brokers also connect to each other (and to the controllers) with it
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    clear = serialization.NoEncryption()
    _write_private(files.ca_key, ca_key.private_bytes(pem, pkcs8, clear))
    _write_private(files.server_key, server_key.private_bytes(pem, pkcs8, clear))
    files.server_cert.write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    return files
