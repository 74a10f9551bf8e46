"""Throwaway TLS material for tests, made with the ``openssl`` command: a CA, a server
certificate for 127.0.0.1/localhost and a client certificate (its key encrypted)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY_PASSWORD = "client-key-pass-7f3a"  # noqa: S105 - a test key's password


@dataclass(frozen=True)
class Certs:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    other_ca: Path  # a CA that signed nothing here


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _signed(folder: Path, name: str, ca: Path, ca_key: Path, subject: str, ext: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject)
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(extfile),
    )  # fmt: skip
    return cert, key


def make_certs(folder: Path) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    cas = []
    for name in ("ca", "other-ca"):
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "2", "-subj", f"/CN=guardstream-test-{name}",
        )  # fmt: skip
        cas.append((cert, key))
    (ca, ca_key), (other_ca, _) = cas
    server_cert, server_key = _signed(
        folder, "server", ca, ca_key, "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"
    )
    client_cert, plain_key = _signed(
        folder, "client", ca, ca_key, "/CN=guardstream-worker", "extendedKeyUsage=clientAuth"
    )
    client_key = folder / "client-encrypted.key"
    _openssl(
        "pkey", "-in", str(plain_key), "-out", str(client_key), "-aes256", "-passout", f"pass:{KEY_PASSWORD}"
    )
    plain_key.unlink()
    return Certs(ca, ca_key, server_cert, server_key, client_cert, client_key, other_ca)
