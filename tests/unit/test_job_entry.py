"""Every function no HTTP route reaches (authorizers, launch steps, schedules, seeding) goes through the
shared `job_entry` wrapper: Lambda context on its log lines, a trace segment and metrics per invocation."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from sandboxcp.observability import job_entry, logger
from sandboxcp.routes import AUTHORIZERS, JOBS, LAUNCH_STEPS

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
NON_HTTP = sorted({j.module for j in (*AUTHORIZERS.values(), *LAUNCH_STEPS.values(), *JOBS)})


def _decorators(module: str) -> list[str]:
    tree = ast.parse((FUNCTIONS / f"{module}.py").read_text())
    [handler] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
    return [ast.unparse(d) for d in handler.decorator_list]


@pytest.mark.parametrize("module", NON_HTTP)
def test_every_non_http_function_uses_the_shared_wrapper(module):
    assert _decorators(module) == ["job_entry"], (
        f"functions/{module}.py: decorate handler with @job_entry only"
    )


class _Context:
    function_name = "job"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:job"
    memory_limit_in_mb = 128
    aws_request_id = "req-1"


def test_the_wrapper_logs_with_the_lambda_context_and_returns_the_result():
    seen: dict[str, Any] = {}

    @job_entry
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.update(logger.get_current_keys())
        return {"echo": event["x"]}

    assert handler({"x": 1}, _Context()) == {"echo": 1}
    assert seen["function_request_id"] == "req-1" and seen["function_name"] == "job"
    assert handler.__name__ == "handler"
