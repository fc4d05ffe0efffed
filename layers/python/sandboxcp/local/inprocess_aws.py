"""DynamoDB calls of the local stack's own process answered by moto in-process, without the loopback hop.

Every boto3/pynamodb client of `sandboxcp local` talks to the moto server (`AWS_ENDPOINT_URL`) over
HTTP on 127.0.0.1. For DynamoDB that hop cost 4-10 ms a call under load against ~1.5 ms for moto
itself, and an execute request makes about ten calls: it was most of the local API's latency. So a
botocore `before-send` handler (the hook moto's own stubber uses) hands a DynamoDB request meant for
the moto server straight to the WSGI application that server runs for DynamoDB, and returns its answer
as the HTTP response would have been (status, headers, body: errors such as
TransactionCanceledException and their cancellation reasons come back as over HTTP). The moto server
in this process uses moto's global backends, so everyone else (other processes, S3 presigned URLs,
Step Functions) still sees the same tables through it. Any other request goes over HTTP as before.

In AWS each DynamoDB call is a real network round trip: this changes the local figures only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from io import BytesIO
from typing import Any, Literal

import botocore.handlers
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

EVENT = "before-send.dynamodb"
_UNIQUE_ID = "sandboxcp-inprocess-dynamodb"
_install_lock = threading.Lock()
_target: tuple[str, Callable[..., Any]] | None = None  # (the moto server's URL + "/", its WSGI app)
# moto's backends are not thread-safe; this process's calls run one at a time (the GIL nearly did anyway).
_moto_lock = threading.RLock()


class _RawBody(BytesIO):
    """The raw response botocore reads (`stream()`), as moto's botocore_stubber.MockRawResponse."""

    def stream(self, **_: Any) -> Any:
        while chunk := self.read(65536):
            yield chunk


def backend_app(service: Literal["dynamodb", "s3"]) -> Callable[..., Any]:
    """The WSGI application the moto server hands `service`'s requests to, on the same (global) backends.
    (Its front, DomainDispatcherApplication, would work too, but finds the service anew for each request
    under a lock: a quarter of the cost of a call.) DynamoDB here; S3 in the local S3 forwarder."""
    from moto.moto_server.werkzeug_app import create_backend_app

    return create_backend_app(service)


def _before_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    target = _target
    if target is None or not request.url.startswith(target[0]):
        return None  # not for the moto server (or uninstalled): HTTP as usual
    from werkzeug.exceptions import InternalServerError
    from werkzeug.test import EnvironBuilder

    body: Any = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    builder = EnvironBuilder(path=request.url, method=request.method, headers=headers, data=body or b"")
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    try:
        with _moto_lock:
            status, response_headers, content = _run(target[1], environ)
    except Exception:
        # What the moto server does when moto fails: werkzeug answers 500, which botocore retries.
        logging.getLogger(__name__).warning("moto failed on a DynamoDB request", exc_info=True)
        status, response_headers, content = _run(InternalServerError(), environ)
    return AWSResponse(
        request.url,
        int(status.split(" ", 1)[0]),
        dict(response_headers.items()),  # type: ignore[arg-type]  # wrapped in a HeadersDict, as moto does
        _RawBody(content),  # what botocore reads of a urllib3 response: stream()
    )


def _run(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[str, Any, bytes]:
    from werkzeug.test import run_wsgi_app

    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    return status, headers, b"".join(app_iter)


def install(endpoint: str, app: Callable[..., Any] | None = None) -> None:
    """Answer this process's DynamoDB requests to `endpoint` (the moto server) with `app` in-process.

    Covers every botocore session created afterwards (boto3's and pynamodb's, which makes its own) and
    boto3's default session if it already exists; clients made before, on other sessions, keep HTTP."""
    global _target
    from sandboxcp.local import moto_dynamodb, moto_transactions

    moto_transactions.install()  # transactions cost what their items cost, not their tables
    moto_dynamodb.install()  # responses without moto's per-value shape walk
    with _install_lock:
        _target = (endpoint.rstrip("/") + "/", app or backend_app("dynamodb"))
        if (EVENT, _before_send) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((EVENT, _before_send))
        _default_session_events(lambda events: events.register(EVENT, _before_send, unique_id=_UNIQUE_ID))


def uninstall() -> None:
    """Back to HTTP for every client, including those made while installed."""
    global _target
    with _install_lock:
        _target = None
        while (EVENT, _before_send) in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove((EVENT, _before_send))
        _default_session_events(lambda events: events.unregister(EVENT, unique_id=_UNIQUE_ID))


def installed() -> bool:
    return _target is not None


def _default_session_events(action: Callable[[Any], None]) -> None:
    import boto3

    if boto3.DEFAULT_SESSION is not None:
        action(boto3.DEFAULT_SESSION.events)
