"""Importing a function module (a Lambda cold start's init) loads only what its requests need from the start
(issue #14; bench/cold_imports.py measures it): the X-Ray SDK, boto3, pynamodb and the runtime clients are
loaded on first use. Where init is off the request path (SnapStart, provisioned concurrency) the same
modules are loaded at init instead (sandboxcp.observability.prepare_init).

Each check runs in a fresh interpreter: this process has long imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandboxcp.local.aws import local_settings_env

ROOT = Path(__file__).resolve().parents[2]
# Loaded by no function module at import: the tracer's SDK (with its two botocore clients), the AWS SDK and
# the DynamoDB mapper (first request), the runtime and executor clients, powertools' Idempotency utility.
LAZY = (
    "aws_xray_sdk",
    "boto3",
    "botocore.client",
    "pynamodb",
    "kubernetes",
    "httpx",
    "aws_lambda_powertools.utilities.idempotency",
    # Resolvers of powertools' event handler __init__ that no function uses (sandboxcp.api.lean_powertools).
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "asyncio",
    "aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event",  # nor event classes
)
# An API-key authorizer's request needs no HTTP resolver, no request validation, no response models.
NOT_IN_AUTHORIZER = (
    "aws_lambda_powertools.event_handler.api_gateway",
    "sandboxcp.api.resolver",
    "sandboxcp.api.schemas.common",
)


def _loaded(module: str, names: tuple[str, ...], **env: str) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"print(json.dumps({{n: n in sys.modules for n in {list(names)!r}}}))\n"
    )
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER"))},
        **local_settings_env("/tmp/sandboxcp-cold-imports", "process"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT / "layers" / "python")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "module",
    [
        "authorizer_api_key",
        "executions_submit",
        "sessions_create",
        "internal_execution_result",
        "launch_place",
    ],
)
def test_a_function_module_imports_no_sdk_client_or_tracer(module):
    loaded = _loaded(module, LAZY)
    assert [name for name, present in loaded.items() if present] == []


def test_the_api_key_authorizer_loads_no_http_resolver():
    loaded = _loaded("authorizer_api_key", NOT_IN_AUTHORIZER)
    assert [name for name, present in loaded.items() if present] == []


def test_a_snapstart_init_loads_the_first_requests_modules_into_the_snapshot():
    loaded = _loaded(
        "sessions_create",
        (
            "aws_xray_sdk.core",
            "boto3",
            "pynamodb.models",
            "sandboxcp.adapters.dynamo.sessions",
            "sandboxcp.adapters.launch_workflow",
            "sandboxcp.services.idempotent_create",
            "kubernetes",
        ),
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        _HANDLER="sessions_create.handler",
        LAMBDA_TASK_ROOT="/var/task",  # in Lambda, tracing on: the tracer is built into the snapshot too
        POWERTOOLS_TRACE_DISABLED="false",
    )
    # Its access (sessions:rw, templates:r, launch:start, idempotency:rw) names no runtime: no kubernetes.
    assert loaded == {
        "aws_xray_sdk.core": True,
        "boto3": True,
        "pynamodb.models": True,
        "sandboxcp.adapters.dynamo.sessions": True,
        "sandboxcp.adapters.launch_workflow": True,
        "sandboxcp.services.idempotent_create": True,
        "kubernetes": False,
    }


def test_an_on_demand_init_loads_nothing_more():
    loaded = _loaded(
        "sessions_create",
        ("aws_xray_sdk", "boto3", "pynamodb", "sandboxcp.services.idempotent_create"),
        AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
        _HANDLER="sessions_create.handler",
        LAMBDA_TASK_ROOT="/var/task",
        POWERTOOLS_TRACE_DISABLED="false",
    )
    assert not any(loaded.values()), loaded


def test_where_tracing_is_disabled_a_handler_runs_without_the_xray_sdk():
    loaded = _loaded(
        "sandboxcp.observability as o; assert o.traced(lambda e, c: e)(1, None) == 1",
        ("aws_xray_sdk",),
    )
    assert loaded == {"aws_xray_sdk": False}


def test_the_tracer_is_built_on_first_use_and_shared():
    from sandboxcp import observability

    assert observability.tracer is observability.get_tracer()
    assert observability.tracer.service == observability.SERVICE


def test_a_traced_handler_builds_its_decorator_once_and_keeps_the_name():
    from sandboxcp.observability import traced

    calls: list[Any] = []

    def handler(event: Any, context: Any) -> Any:
        calls.append(event)
        return {"ok": event}

    wrapped = traced(handler)
    assert wrapped.__name__ == "handler"
    assert wrapped(1, None) == {"ok": 1} and wrapped(2, None) == {"ok": 2}
    assert calls == [1, 2]


def test_the_lean_powertools_packages_still_export_every_name_on_first_use():
    code = (
        "import sandboxcp.api, sys\n"
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver, content_types\n"
        "assert 'aws_lambda_powertools.event_handler.appsync' not in sys.modules\n"
        "from aws_lambda_powertools.event_handler import AppSyncResolver\n"
        "from aws_lambda_powertools.utilities.data_classes import SQSEvent, APIGatewayProxyEvent\n"
        "from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent as RealSQS\n"
        "assert SQSEvent is RealSQS\n"
        "from aws_lambda_powertools.event_handler.appsync import AppSyncResolver as Real\n"
        "assert AppSyncResolver is Real and content_types.APPLICATION_JSON == 'application/json'\n"
        "import aws_lambda_powertools.event_handler as package\n"
        "assert set(package.__all__) >= {'AppSyncResolver', 'APIGatewayRestResolver', 'Response'}\n"
        "try:\n"
        "    from aws_lambda_powertools.event_handler import NoSuchName\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('an unknown name imported')\n"
        "print('{\"ok\": true}')\n"
    )
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "python")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ok": True}
