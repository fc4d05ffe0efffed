"""Handlers on moto: each test gets fresh DynamoDB tables, bucket and state machine (moto in-process),
the sample event from events/, and doubles only for the sandbox side (runtime, executor, workflow
callback), which the end-to-end tests exercise for real."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandboxcp.local.aws import aws_environment, local_settings_env

os.environ.update(aws_environment(""))
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.update(local_settings_env("/tmp/sandboxcp-functional", "process"))
os.environ["LAUNCH_STATE_MACHINE_ARN"] = ""

from moto import mock_aws

from sandboxcp.domain.models import Session
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec, SandboxState
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import SessionStatus
from sandboxcp.local import access_guard
from sandboxcp.local.functions import LocalContext
from sandboxcp.services.deps import Dependencies, set_deps
from sandboxcp.settings import get_settings
from tests.functional.interactive_double import InteractiveExecutorDouble

# The contract's error body: every 4xx and 5xx answer has exactly these fields.
ERROR_FIELDS = {"error_code", "description", "error_detail", "solution", "request_id"}

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLE_SESSION = "sess_0000000000000001"
SAMPLE_EXECUTION = "exec_20260101_00000001"
TENANT = "tenant-a"


class RecordingRuntime:
    """A double of ports.Runtime (all of it: callers never probe for optional methods)."""

    name = "process"
    default_node = "local"
    addresses_at_start = True

    def __init__(self) -> None:
        self.started: list[SandboxSpec] = []
        self.destroyed: list[str] = []

    def start(self, spec: SandboxSpec) -> SandboxHandle:
        self.started.append(spec)
        return SandboxHandle(
            container_id=f"proc-{spec.session_id}",
            node="local",
            executor_url=f"unix:///tmp/{spec.session_id}.sock",
        )

    def destroy(self, container_id: str) -> None:
        self.destroyed.append(container_id)

    def states(self, container_ids: Any) -> dict[str, SandboxState]:
        self.state_calls = getattr(self, "state_calls", 0) + 1
        return {container_id: self.state(container_id) for container_id in container_ids}

    def state(self, container_id: str) -> SandboxState:
        return "missing" if container_id in self.destroyed else "running"

    def executor_url(self, container_id: str) -> str | None:
        return f"unix:///tmp/{container_id.removeprefix('proc-')}.sock"

    def logs(self, container_id: str, tail: int = 100, since: Any = None) -> list[str]:
        return []

    def list_managed(self) -> list[Any]:
        return []

    def ping(self) -> bool:
        return True


class RecordingExecutor(InteractiveExecutorDouble):  # + code contexts and background processes
    def __init__(self) -> None:
        self.submitted: list[Any] = []
        self.workspaces: list[Any] = []
        self.binds: list[Any] = []
        self.executor_keys: list[str] = []

    def bind(
        self, executor_url: str, session_id: str, callback_token: str, env: Any, *, wait_s: float = 0.0
    ) -> None:
        self.binds.append((executor_url, session_id, callback_token, dict(env)))

    def submit(
        self,
        executor_url: str,
        execution: Any,
        workspace: Any = None,
        *,
        executor_key: str = "",
        wait_s: float = 0.0,
    ) -> None:
        self.submitted.append((executor_url, execution))
        self.workspaces.append(workspace)
        self.executor_keys.append(executor_key)


class RecordingLaunch:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.ready: list[tuple[str, dict[str, Any]]] = []

    def start(self, session_id: str) -> None:
        self.real.start(session_id)

    def notify_ready(self, task_token: str, output: Any) -> None:
        self.ready.append((task_token, dict(output)))


@pytest.fixture
def deps() -> Iterator[Dependencies]:
    access_guard.install()
    with mock_aws():
        from sandboxcp.local.aws import provision

        get_settings.cache_clear()
        os.environ["LAUNCH_STATE_MACHINE_ARN"] = provision(get_settings())
        get_settings.cache_clear()
        d = Dependencies(get_settings())
        d.runtime = RecordingRuntime()
        d.executor = RecordingExecutor()
        d.launch = RecordingLaunch(d.launch)
        from sandboxcp.services.templates import seed_default_templates

        seed_default_templates(d)
        set_deps(d)
        yield d
        set_deps(None)


def sample_event(module: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{module}.json").read_text())


def invoke(module: str, event: dict[str, Any]) -> Any:
    """The function as Lambda runs it, with only the AWS access its role has (local/access_guard.py)."""
    handler = importlib.import_module(module).handler
    with access_guard.acting_as(module):
        return handler(event, LocalContext(function_name=module))


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def seed_session(
    deps: Dependencies,
    session_id: str = SAMPLE_SESSION,
    *,
    tenant: str = TENANT,
    status: SessionStatus = SessionStatus.RUNNING,
    token_hash: str | None = None,
) -> Session:
    now = datetime.now(UTC)
    session = Session(
        session_id=session_id,
        tenant_id=tenant,
        template_id="python-basic",
        status=SessionStatus.CREATING,
        runtime_type="process",
        workspace_path=f"s3://b/workspace/{session_id}/",
        resources=ResourceLimit(),
        timeout=300,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
        callback_token_hash=token_hash,
    )
    deps.sessions.create(session)
    fields = {
        "container_id": f"proc-{session_id}",
        "executor_url": f"unix:///tmp/{session_id}.sock",
        "task_token": "task-token-1",
    }
    deps.sessions.update_fields(session_id, fields, only_if=[SessionStatus.CREATING])
    if status != SessionStatus.CREATING:
        deps.sessions.transition(session_id, SessionStatus.RUNNING, now=now)
        if status != SessionStatus.RUNNING:
            deps.sessions.transition(session_id, status, now=now)
    result = deps.sessions.get(session_id)
    assert result is not None
    return result


def with_path(event: dict[str, Any], **params: str) -> dict[str, Any]:
    """Point a sample event at other path parameters (the resolver routes on `path`)."""
    event["pathParameters"] = {**(event.get("pathParameters") or {}), **params}
    path = event["resource"]
    for name, value in event["pathParameters"].items():
        path = path.replace("{" + name + "}", value)
    event["path"] = path
    return event


@pytest.fixture
def atomic_writes(monkeypatch):  # type: ignore[no-untyped-def]
    """DynamoDB applies a conditional write atomically; moto's in-process backend does not lock, so two
    threads can both pass a condition. Serialize its writes, as the real service does per item. A
    transaction too: moto's snapshots the tables, applies its items through the same methods (hence a
    re-entrant lock) and, when one fails, puts the snapshot back, which would undo other threads' writes
    made meanwhile."""
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("update_item", "put_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every AWS API call made while the test runs (`service.Operation`)."""
    calls: list[str] = []
    on_aws_calls(monkeypatch, lambda operation, _request: calls.append(operation))
    yield calls


def on_aws_calls(monkeypatch: pytest.MonkeyPatch, record: Callable[[str, dict[str, Any]], None]) -> None:
    """Call `record(service.Operation, serialized request)` for every AWS API call made while the test runs,
    on botocore's `before-call` event, which every client (boto3's and pynamodb's) emits once per call."""
    import botocore.hooks

    emit = botocore.hooks.HierarchicalEmitter.emit_until_response  # how a client emits before-call

    def counting(self: Any, event_name: str, **kwargs: Any) -> Any:
        if event_name.startswith("before-call."):
            record(event_name.removeprefix("before-call."), kwargs.get("params") or {})
        return emit(self, event_name, **kwargs)

    monkeypatch.setattr(botocore.hooks.HierarchicalEmitter, "emit_until_response", counting)
