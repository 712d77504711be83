"""Throwaway PKI for TLS tests: a CA, a server certificate for localhost / 127.0.0.1, clients."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgescore.client.launcher import TlsFiles


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, key: ec.EllipticCurvePrivateKey,
           cert: x509.Certificate) -> tuple[str, str]:
    key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


class ThrowawayCA:
    """A self-signed CA (P-256, valid one day) that issues leaf certificates."""

    def __init__(self, name: str = "edgescore test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, common_name: str, server: bool) -> tuple[ec.EllipticCurvePrivateKey,
                                                             x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def write(self, folder: Path, stem: str = "ca") -> str:
        path = folder / f"{stem}.pem"
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return str(path)


def make_tls_files(folder: Path, mutual: bool = False) -> TlsFiles:
    """CA + server cert (localhost, 127.0.0.1); with `mutual`, a client CA and a client cert."""
    ca = ThrowawayCA()
    server_cert, server_key = _write(folder, "server", *ca.issue("localhost", server=True))
    files = TlsFiles(ca=ca.write(folder), server_cert=server_cert, server_key=server_key)
    if mutual:
        client_ca = ThrowawayCA("edgescore test client CA")
        files.client_ca = client_ca.write(folder, "client-ca")
        files.client_cert, files.client_key = _write(
            folder, "client", *client_ca.issue("agent-1", server=False))
    return files
