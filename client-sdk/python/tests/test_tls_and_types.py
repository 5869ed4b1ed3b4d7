"""TLS with a client certificate (mTLS), keys made at run time; and the package's types."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import client_info
from client_info import Client, ClientError, RetryPolicy

from conftest import Database, Domain


def _issue(
    name: str, issuer: "tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None", *, ca: bool
) -> "tuple[x509.Certificate, ec.EllipticCurvePrivateKey]":
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_calls_over_tls_with_a_client_certificate(
    database: Database, domain: Domain, tmp_path: Path
) -> None:
    ca = _issue("test CA", None, ca=True)
    server_cert, server_key = _issue("localhost", ca, ca=False)
    client_cert, client_key = _issue("routing", ca, ca=False)
    (tmp_path / "server.crt").write_bytes(_pem(server_cert))
    (tmp_path / "server.key").write_bytes(_key_pem(server_key))
    (tmp_path / "ca.crt").write_bytes(_pem(ca[0]))
    server = database.server(
        extra=[
            "--tls-cert", str(tmp_path / "server.crt"),
            "--tls-key", str(tmp_path / "server.key"),
            "--tls-client-ca", str(tmp_path / "ca.crt"),
        ]
    )
    try:
        url = f"https://{server.addr}"
        with Client(
            url, token=domain.service.token, ca_certificate=_pem(ca[0]),
            identity=(_pem(client_cert), _key_pem(client_key)),
        ) as client:
            created = client.create_contact("Tia Wren", phones=["07400 654321"]).contact
            assert client.get_contact(created.id).display_name == "Tia Wren"
        # Without a client certificate the server refuses the handshake.
        with Client(
            url, token=domain.service.token, ca_certificate=_pem(ca[0]), retry=RetryPolicy.none(),
            timeout=5.0,
        ) as anonymous:
            with pytest.raises(ClientError) as caught:
                anonymous.get_contact(created.id)
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_the_installed_package_passes_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    site = str(Path(client_info.__file__).resolve().parent.parent)
    usage = tmp_path / "usage.py"
    usage.write_text(
        "from client_info import Client, ClientError, Reason, WatchOptions\n"
        "from clientinfo.v1 import interaction_pb2\n"
        "def panel_names(client: Client, call: str) -> list[str]:\n"
        "    panel: interaction_pb2.ClientInfoPanel = client.get_client_info(call)\n"
        "    return [c.contact.contact.display_name for c in panel.candidates]\n"
        "def version_conflict(e: ClientError) -> bool:\n"
        "    return e.reason is Reason.CONTACT_VERSION_MISMATCH\n"
        "def first_sequence(client: Client) -> int:\n"
        "    for event in client.watch_session(WatchOptions(resume_after=0)):\n"
        "        return event.sequence\n"
        "    return 0\n"
    )
    env = dict(os.environ, MYPYPATH=os.pathsep.join([site, str(tmp_path)]))
    out = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
            "-p", "client_info", "-p", "clientinfo", "-m", "usage",
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_reasons_are_exactly_the_readmes_table() -> None:
    """`Reason` holds every reason the README documents, and no other (but UNRECOGNIZED)."""
    import re

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("<summary>Every reason</summary>") :]
    table = table[: table.index("</details>")]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert len(documented) > 40, "the README's table of reasons was found"
    known = {r.name for r in client_info.Reason if r is not client_info.Reason.UNRECOGNIZED}
    assert known == documented
