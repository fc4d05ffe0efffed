"""The route table's access grants, enforced where there is no IAM: in the local stack and the tests.

In AWS each function's role gets exactly what its access list in `sandboxcp.routes` names (infra's
`AccessGrants`): a DynamoDB call on a table it was not granted, or a write where it was granted reads,
fails with AccessDeniedException. moto checks no IAM, so without this a function could touch any table
here and fail only once deployed (a warm-pool claim made by `sessions_create`, whose role had no grant on
the warm pool's table, did exactly that).

While a function module runs (`acting_as`, which the local stack's `LocalFunctions` and the functional
tests' `invoke` use), every botocore call it makes on this deployment's tables, bucket or launch state
machine is checked against its access list and refused as AWS would refuse it. Calls made outside a
function (provisioning, a test's own setup) and calls to other services (the runtime's ECS or EKS APIs,
which the `runtime` grant covers) are not checked. Threads a function starts run unchecked.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Iterator, Mapping
from typing import Any

_current: contextvars.ContextVar[tuple[str, frozenset[str]] | None] = contextvars.ContextVar(
    "sandboxcp_access", default=None
)
_install_lock = threading.Lock()
_EVENT = "before-parameter-build"
_UNIQUE_ID = "sandboxcp-access-guard"

# DynamoDB operations that need only read access (CDK's grant_read_data), per item of a transaction too.
_DYNAMODB_READS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "Get", "ConditionCheck"}
)
_STATES = {
    "StartExecution": "launch:start",
    **dict.fromkeys(("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"), "launch:callback"),
}


@functools.cache
def _access_lists() -> Mapping[str, tuple[str, ...]]:
    from sandboxcp.routes import AUTHORIZERS, JOBS, LAUNCH_STEPS, ROUTES

    lists = {route.module: tuple(route.access) for route in ROUTES}
    lists.update(
        {job.module: tuple(job.access) for job in (*AUTHORIZERS.values(), *LAUNCH_STEPS.values(), *JOBS)}
    )
    return lists


def granted(module: str, runtime: str) -> frozenset[str] | None:
    """The access strings a function's role has: its list, with what `runtime` implies where it names it.
    None for a function the route table does not hold (the WebSocket API's, whose grants
    infra/sandboxcp_infra/streaming.py writes itself): those are not checked."""
    from sandboxcp.routes import RUNTIME_IMPLIED_ACCESS

    access = _access_lists().get(module)
    if access is None:
        return None
    implied = RUNTIME_IMPLIED_ACCESS.get(runtime, ()) if "runtime" in access else ()
    return frozenset((*access, *implied))


@contextlib.contextmanager
def acting_as(module: str, runtime: str | None = None) -> Iterator[None]:
    """Check the AWS calls made in this context against `module`'s grants (on `runtime`, by default the
    deployment's)."""
    if runtime is None:
        from sandboxcp.settings import get_settings

        runtime = get_settings().runtime
    access = granted(module, runtime)
    token = _current.set((module, access) if access is not None else None)
    try:
        yield
    finally:
        _current.reset(token)


def install() -> None:
    """Check every botocore session made from now on (and boto3's default one); idempotent."""
    import boto3
    import botocore.handlers

    with _install_lock:
        if (_EVENT, _check) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((_EVENT, _check))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register(_EVENT, _check, unique_id=_UNIQUE_ID)


_names: tuple[object, dict[str, str]] | None = None  # (the settings they were read from, the names)


def _resources() -> dict[str, str]:
    """This deployment's table and bucket names -> the access resource they are (read again only when
    the settings object changes: this runs on every AWS call of a function)."""
    global _names
    from sandboxcp.adapters.tables import TABLES
    from sandboxcp.settings import get_settings

    settings = get_settings()
    if _names is None or _names[0] is not settings:
        names = {getattr(settings, field): resource for resource, (_, field) in TABLES.items()}
        names[settings.idempotency_table] = "idempotency"
        names[settings.workspace_bucket] = "workspace"
        _names = (settings, names)
    return _names[1]


def _check(params: Mapping[str, Any], model: Any, **_: Any) -> None:
    acting = _current.get()
    if acting is None:
        return
    module, access = acting
    service, operation = model.service_model.service_name, model.name
    if service == "dynamodb":
        needed = [
            (table, "r" if kind in _DYNAMODB_READS else "rw")
            for table, kind in _dynamodb_items(operation, params)
        ]
    elif service == "s3" and params.get("Bucket"):
        read = operation.startswith(("Get", "Head", "List"))
        needed = [(str(params["Bucket"]), "r" if read else "rw")]
    elif service == "stepfunctions" and operation in _STATES:
        if _STATES[operation] not in access:
            _deny(module, f"states:{operation}", _STATES[operation], access)
        return
    else:
        return
    resources = _resources()
    for name, mode in needed:
        resource = resources.get(name)
        if resource is None:
            continue  # not one of this deployment's (a test's own table, say)
        if f"{resource}:rw" in access or (mode == "r" and f"{resource}:r" in access):
            continue
        _deny(module, f"{service}:{operation} on {name}", f"{resource}:{mode}", access)


def _dynamodb_items(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(table, operation) for each table a call touches (a transaction's items one by one)."""
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            (str(body["TableName"]), kind)
            for item in params.get("TransactItems") or []
            for kind, body in item.items()
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(str(table), operation) for table in params.get("RequestItems") or {}]
    return [(str(params["TableName"]), operation)] if params.get("TableName") else []


def _deny(module: str, what: str, needs: str, access: frozenset[str]) -> None:
    from botocore.exceptions import ClientError

    message = (
        f"function '{module}' is not authorized to perform {what}: its access list in sandboxcp.routes"
        f" lacks '{needs}' (it has {sorted(access)})"
    )
    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, what.split(" ")[0])
