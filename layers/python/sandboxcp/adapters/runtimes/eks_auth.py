"""Bearer tokens for the EKS API server, made the way `aws eks get-token` makes them.

The token is `k8s-aws-v1.` + base64url (unpadded) of a presigned STS `GetCallerIdentity` URL whose signature
covers the header `x-k8s-aws-id: <cluster name>`. EKS calls STS with it to learn who we are (the function's
IAM role, mapped to a Kubernetes identity by an access entry or aws-auth); no Kubernetes secret or static
credential is involved. Credentials come from botocore's default chain (the Lambda role, IRSA, env).

The API server accepts a token for 15 minutes after it was signed; we cache one for 10 and sign anew after.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
URL_EXPIRES_S = 60
TOKEN_CACHE_S = 600  # EKS honours a token for 15 minutes after signing; refresh well before that


class EksAuthError(RuntimeError):
    """No credentials to sign a token with."""


def sts_url(region: str) -> str:
    return f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


def presigned_get_caller_identity(cluster_name: str, region: str, credentials: Any) -> str:
    """A GET URL for STS GetCallerIdentity, SigV4-presigned with `x-k8s-aws-id` among the signed headers."""
    from botocore.hooks import HierarchicalEmitter
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    emitter = HierarchicalEmitter()  # the signer holds it weakly: keep it alive while signing
    signer = RequestSigner(ServiceId("STS"), region, "sts", "v4", credentials, emitter)
    request = {
        "method": "GET",
        "url": sts_url(region),
        "body": {},
        "headers": {CLUSTER_ID_HEADER: cluster_name},
        "context": {},
    }
    return str(
        signer.generate_presigned_url(
            request, region_name=region, expires_in=URL_EXPIRES_S, operation_name=""
        )
    )


def token_from_url(url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def url_from_token(token: str) -> str:
    """The presigned URL inside a token (for tests and debugging)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token")
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _default_credentials() -> Any:
    import botocore.session

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise EksAuthError("no AWS credentials found to sign an EKS token")
    return credentials


class EksTokenSource:
    """Signs a token on first use and again once the cached one is `TOKEN_CACHE_S` old. Thread-safe."""

    def __init__(
        self,
        cluster_name: str,
        region: str,
        *,
        credentials: Callable[[], Any] = _default_credentials,
        clock: Callable[[], float] = time.monotonic,
        cache_s: float = TOKEN_CACHE_S,
    ) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self._credentials = credentials
        self._clock = clock
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self._signed_at = 0.0

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._signed_at >= self._cache_s:
                url = presigned_get_caller_identity(self.cluster_name, self.region, self._credentials())
                self._token = token_from_url(url)
                self._signed_at = now
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (after the API server answered 401)."""
        with self._lock:
            self._token = None
