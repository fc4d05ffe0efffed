"""Client TLS for remote Docker engines (`tcp://host:2376`): the CA that signed the engine's certificate,
and the client certificate and key the engine requires (`dockerd --tlsverify`).

Two sources:
- a directory in Docker's own layout (`ca.pem`, `cert.pem`, `key.pem`, as for DOCKER_CERT_PATH);
- a Secrets Manager secret (DOCKER_TLS_SECRET_ARN) whose SecretString is JSON with the three PEMs under
  `ca`, `cert` and `key` (`ca.pem`, `cert.pem`, `key.pem` are accepted too). boto3 is imported only here,
  and only when a secret is actually read.

The key never goes to a log or an error message. `ssl` can only load a certificate chain from files, so the
PEMs are written to a private temporary directory (0700, files 0600) just long enough to load them.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxcp.domain.errors import SandboxUnavailable


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: str
    cert_pem: str
    key_pem: str = field(repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the engine against `ca_pem` (hostname included) and presents the client certificate."""
        try:
            ctx = ssl.create_default_context(cadata=self.ca_pem)
        except ssl.SSLError as exc:
            raise SandboxUnavailable(f"Docker TLS: the CA certificate does not load ({exc.reason})") from None
        tmp = tempfile.mkdtemp(prefix="sandboxcp-docker-tls-")
        try:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            for path, text in ((cert, self.cert_pem), (key, self.key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
            ctx.load_cert_chain(str(cert), str(key))
        except ssl.SSLError as exc:
            raise SandboxUnavailable(
                f"Docker TLS: the client certificate or key does not load ({exc.reason})"
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ctx


def from_directory(path: str) -> TlsMaterial:
    base = Path(path)
    try:
        return TlsMaterial(
            ca_pem=(base / "ca.pem").read_text(),
            cert_pem=(base / "cert.pem").read_text(),
            key_pem=(base / "key.pem").read_text(),
        )
    except OSError as exc:
        raise SandboxUnavailable(
            f"Docker TLS: cannot read {exc.filename}: {exc.strerror}",
            solution="Put ca.pem, cert.pem and key.pem in the directory DOCKER_CERT_PATH names",
        ) from None


def parse_secret(secret_string: str) -> TlsMaterial:
    try:
        data: Any = json.loads(secret_string)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SandboxUnavailable("Docker TLS: the secret is not a JSON object with 'ca', 'cert' and 'key'")

    def pem(name: str) -> str:
        value = data.get(name) or data.get(f"{name}.pem")
        if not isinstance(value, str) or "-----BEGIN" not in value:
            raise SandboxUnavailable(f"Docker TLS: the secret has no PEM under '{name}'")
        return value

    return TlsMaterial(ca_pem=pem("ca"), cert_pem=pem("cert"), key_pem=pem("key"))


def from_secret(secret_arn: str, region: str | None = None, client: Any = None) -> TlsMaterial:
    """Read the PEMs from Secrets Manager (`client` may be given, e.g. a stubbed one in tests)."""
    if client is None:
        import boto3  # only a deployment with remote engines pays for it

        client = (
            boto3.client("secretsmanager", region_name=region) if region else boto3.client("secretsmanager")
        )
    try:
        value = client.get_secret_value(SecretId=secret_arn)
    except Exception as exc:  # botocore's ClientError and friends; their text names the secret, not its value
        raise SandboxUnavailable(f"Docker TLS: cannot read secret {secret_arn}: {exc}") from None
    return parse_secret(str(value.get("SecretString") or ""))
