"""Identifiers, resource limits and request limits from the contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sandboxcp.domain.ids import new_execution_id, new_session_id
from sandboxcp.domain.resources import ResourceLimit, quantity_mb
from sandboxcp.services.requests.executions import ExecuteRequest
from sandboxcp.services.requests.sessions import CreateSessionRequest


def test_ids_follow_the_contract_patterns():
    ids = {new_session_id() for _ in range(500)}
    assert len(ids) == 500 and all(re.fullmatch(r"sess_[a-z0-9]{16}", i) for i in ids)
    eid = new_execution_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert re.fullmatch(r"exec_20260102_[a-z0-9]{8}", eid)


@pytest.mark.parametrize(("text", "mb"), [("256Mi", 256), ("1Gi", 1024), ("8Gi", 8192)])
def test_quantities(text, mb):
    assert quantity_mb(text) == mb


@pytest.mark.parametrize(
    "limits",
    [
        {"cpu": "0.25"},
        {"cpu": "5"},
        {"cpu": "one"},
        {"memory": "128Mi"},
        {"memory": "9Gi"},
        {"memory": "1G"},
        {"disk": "512Mi"},
        {"disk": "51Gi"},
        {"max_processes": 8},
        {"max_processes": 5000},
        {"gpu": "1"},
    ],
)
def test_resource_limits_out_of_range_are_refused(limits):
    with pytest.raises(ValidationError):
        ResourceLimit.model_validate(limits)


def test_resource_limits_at_the_edges_are_accepted():
    low = ResourceLimit(cpu="0.5", memory="256Mi", disk="1Gi", max_processes=32)
    high = ResourceLimit(cpu="4", memory="8Gi", disk="50Gi", max_processes=1024)
    assert (low.cpu_cores, low.memory_mb, high.disk_mb) == (0.5, 256, 51200)


def test_code_limit_is_100_kb_in_utf8_bytes():
    ExecuteRequest(code="x" * 102400, language="python")
    with pytest.raises(ValidationError, match="100 KB"):
        ExecuteRequest(code="é" * 51201, language="python")  # 102402 bytes, 51201 characters


@pytest.mark.parametrize("timeout", [0, 3601, -5])
def test_execution_timeout_range(timeout):
    with pytest.raises(ValidationError):
        ExecuteRequest(code="x", language="python", timeout=timeout)


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_ACCESS_KEY_ID": "x"},
        {"SANDBOXCP_CALLBACK_TOKEN": "x"},
        {"1BAD": "x"},
        {f"K{i}": "v" for i in range(65)},
    ],
)
def test_session_env_vars_cannot_shadow_platform_variables(env):
    with pytest.raises(ValidationError):
        CreateSessionRequest(template_id="python-basic", env_vars=env)
