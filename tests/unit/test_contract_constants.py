"""sandbox_executor.contract is the one place for what the control plane and the executor share: both sides
use its values, the modules that keep a copy of one still agree with it, both sides accept and refuse the
same inputs at the limits, and the Lambda layer ships it. Also: every domain field of a session or an
execution is a table attribute of the same name (the repositories map them generically)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from sandbox_executor import callbacks, contract, identity, process, runner, validation
from sandbox_executor import config as executor_config
from sandbox_executor import workspace as executor_workspace
from sandboxcp.adapters.runtimes import docker, ecs, eks
from sandboxcp.adapters.runtimes import process as process_runtime
from sandboxcp.domain import ids, models, workspace
from sandboxcp.services import templates
from sandboxcp.services.requests import executions as execution_requests
from sandboxcp.services.requests import sessions as session_requests

REPO = Path(__file__).resolve().parents[2]
LAYER_CODE = REPO / "layers" / "python"


def test_the_contract_module_is_standard_library_only():
    tree = ast.parse(Path(contract.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_executor_announces_the_contract_features():
    assert callbacks.FEATURES == contract.EXECUTOR_FEATURES
    assert all(len(name) <= contract.MAX_FEATURE_CHARS for name in contract.EXECUTOR_FEATURES)


def test_the_control_plane_takes_its_limits_from_the_contract():
    # ExecuteRequest.code's maxLength
    assert execution_requests.MAX_CODE_BYTES is contract.MAX_CODE_BYTES == 102_400
    assert execution_requests.MAX_EVENT_BYTES is contract.MAX_EVENT_BYTES
    assert session_requests.MAX_ENV_VARS is contract.MAX_ENV_VARS
    assert session_requests.MAX_ENV_BYTES is contract.MAX_ENV_BYTES
    assert workspace.MAX_PATH_BYTES == contract.MAX_PATH_BYTES
    assert templates.SANDBOX_ID == contract.SANDBOX_UID == contract.SANDBOX_GID == 1000
    assert get_args(models.Language) == contract.LANGUAGES
    assert (ids.SESSION_ID_RE.pattern, ids.EXECUTION_ID_RE.pattern) == (
        contract.SESSION_ID_PATTERN,
        contract.EXECUTION_ID_PATTERN,
    )
    timeout = execution_requests.ExecuteRequest.model_fields["timeout"]
    assert timeout.default == contract.DEFAULT_TIMEOUT_S
    assert {"ge": contract.MIN_TIMEOUT_S, "le": contract.MAX_TIMEOUT_S}.items() <= {
        k: getattr(m, k) for m in timeout.metadata for k in ("ge", "le") if hasattr(m, k)
    }.items()


def test_the_executor_takes_its_limits_from_the_contract():
    assert validation.MAX_CODE_BYTES == contract.MAX_CODE_BYTES
    assert validation.LANGUAGES == contract.LANGUAGES
    assert (validation.MIN_TIMEOUT_S, validation.MAX_TIMEOUT_S, validation.DEFAULT_TIMEOUT_S) == (
        contract.MIN_TIMEOUT_S,
        contract.MAX_TIMEOUT_S,
        contract.DEFAULT_TIMEOUT_S,
    )


def test_the_copies_kept_elsewhere_agree_with_the_contract():
    """Modules with their own copy of a contract value (the runtimes, the executor's config, bind,
    runner, output capture and workspace sync)."""
    for runtime in (docker, ecs, eks, process_runtime):
        assert runtime.SANDBOX_UID == contract.SANDBOX_UID, runtime.__name__
    for runtime in (docker, ecs, eks):
        assert runtime.EXECUTOR_PORT == contract.EXECUTOR_PORT, runtime.__name__
    assert f"uid={contract.SANDBOX_UID},gid={contract.SANDBOX_GID}" in docker.WORKSPACE_TMPFS
    assert docker.WORKSPACE == executor_config.DEFAULT_WORKSPACE == contract.WORKSPACE_DIR
    assert executor_config.ListenSpec.parse(executor_config.DEFAULT_LISTEN).port == contract.EXECUTOR_PORT
    assert process.OUTPUT_LIMIT == contract.OUTPUT_LIMIT_BYTES
    assert identity.RESERVED_ENV_PREFIXES == runner._RESERVED_PREFIXES == contract.RESERVED_ENV_PREFIXES
    assert f"^{identity.ENV_NAME_RE.pattern}$" == contract.ENV_NAME_PATTERN
    assert f"^{identity.SESSION_ID_RE.pattern}$" == contract.SESSION_ID_PATTERN
    assert validation.EXECUTION_ID_RE.pattern == contract.EXECUTION_ID_PATTERN
    # Any script within the code limit runs as `bash -c` (Linux refuses one argument of 128 KiB or more).
    assert contract.MAX_CODE_BYTES <= runner.MAX_ARG_BYTES
    # What the API accepts, a bind accepts: its own limits are wider.
    assert contract.MAX_ENV_VARS <= identity.MAX_BIND_ENV_VARS
    assert contract.MAX_ENV_BYTES + 2 * contract.MAX_ENV_VARS <= identity.MAX_BIND_ENV_BYTES


# -- both sides at the limits ----------------------------------------------------------------------------


def _largest_env() -> dict[str, str]:
    names = [f"V{i:02d}" for i in range(contract.MAX_ENV_VARS)]
    room = contract.MAX_ENV_BYTES - sum(len(n) for n in names)
    values = {n: "x" * (room // len(names)) for n in names}
    values[names[0]] += "é" * ((room - sum(len(v) for v in values.values())) // 2)
    values[names[1]] += "x" * (contract.MAX_ENV_BYTES - contract.env_size(values))
    assert contract.env_size(values) == contract.MAX_ENV_BYTES
    return values


def test_the_largest_environment_the_api_accepts_binds_in_the_executor():
    env = _largest_env()
    session_requests.CreateSessionRequest(template_id="python-basic", env_vars=env)
    bound = identity.parse_bind_request({"session_id": "sess_" + "a" * 16, "callback_token": "t", "env": env})
    assert bound.env == env
    with pytest.raises(ValidationError, match="bytes"):
        session_requests.CreateSessionRequest(
            template_id="python-basic", env_vars={**env, "V00": env["V00"] + "x"}
        )


@pytest.mark.parametrize(
    "env",
    [{"A\n": "x"}, {"É": "x"}, {"A-B": "x"}, {"": "x"}, {"AWS_REGION": "x"}, {"A": "nul\0"}],
)
def test_an_environment_the_executor_would_refuse_is_refused_by_the_api(env):
    with pytest.raises(ValidationError):
        session_requests.CreateSessionRequest(template_id="python-basic", env_vars=env)
    with pytest.raises(validation.ValidationError):
        identity.parse_bind_request({"session_id": "sess_" + "a" * 16, "callback_token": "t", "env": env})


def _executor_accepts(**fields: object) -> bool:
    body = {"execution_id": "exec_20260101_abcdefgh", "code": "x", "language": "python", **fields}
    try:
        validation.parse_execute_request(body)
    except validation.ValidationError:
        return False
    return True


def _api_accepts(**fields: object) -> bool:
    try:
        execution_requests.ExecuteRequest.model_validate({"code": "x", "language": "python", **fields})
    except ValidationError:
        return False
    return True


def _event_of(size: int) -> dict[str, str]:
    event = {"k": ""}
    event["k"] = "x" * (size - contract.json_size(event))
    assert contract.json_size(event) == size
    return event


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        ({"code": "x" * contract.MAX_CODE_BYTES}, True),
        ({"code": "é" * (contract.MAX_CODE_BYTES // 2)}, True),
        ({"code": "x" * (contract.MAX_CODE_BYTES + 1)}, False),
        ({"code": " \n\t"}, False),
        ({"event": _event_of(contract.MAX_EVENT_BYTES)}, True),
        ({"event": _event_of(contract.MAX_EVENT_BYTES + 1)}, False),
        ({"event": {"a": [1.5, {"b": float("nan")}]}}, False),
        ({"event": {"a": float("inf")}}, False),
        ({"event": {"a": float("-inf")}}, False),
        ({"event": {"a": "\ud800"}}, False),
        ({"timeout": contract.MIN_TIMEOUT_S}, True),
        ({"timeout": contract.MAX_TIMEOUT_S}, True),
        ({"timeout": contract.MAX_TIMEOUT_S + 1}, False),
        ({"timeout": True}, False),
        ({"timeout": "30"}, False),
        ({"language": "cobol"}, False),
    ],
)
def test_the_api_and_the_executor_agree_on_executions(fields, accepted):
    assert _api_accepts(**fields) is accepted
    assert _executor_accepts(**fields) is accepted


@pytest.mark.parametrize(
    "raw",
    ["a.txt", "dir/sub/file.csv", "./a", "a//b", "x" * contract.MAX_PATH_BYTES, "é" * 512, "data/ü.txt"],
)
def test_a_path_the_api_accepts_is_one_the_executor_syncs(raw):
    normalized = workspace.normalize_path(raw)
    assert executor_workspace.path_problem(normalized) is None
    assert workspace.normalize_path(normalized) == normalized


@pytest.mark.parametrize(
    "raw", ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "a\x01b", "x" * (contract.MAX_PATH_BYTES + 1)]
)
def test_a_path_the_executor_refuses_is_refused_by_the_api(raw):
    from sandboxcp.domain.errors import InvalidParameter

    assert executor_workspace.path_problem(raw) is not None
    with pytest.raises(InvalidParameter):
        workspace.normalize_path(raw)


# -- the Lambda layer ships the contract -----------------------------------------------------------------


def _executor_modules_imported_by_the_control_plane() -> set[str]:
    found = set()
    for path in LAYER_CODE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found.update(n for n in names if n.split(".")[0] == "sandbox_executor")
    return found


def test_the_lambda_layer_ships_every_executor_module_the_control_plane_imports(tmp_path):
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.path.insert(0, str(REPO / "infra"))
    try:
        layers = pytest.importorskip("sandboxcp_infra.layers")
    finally:
        sys.path.remove(str(REPO / "infra"))
    imported = _executor_modules_imported_by_the_control_plane()
    assert "sandbox_executor.contract" in imported
    shipped = {"sandbox_executor"} | {
        f"sandbox_executor.{name.removesuffix('.py')}" for name in layers.SHARED_EXECUTOR_MODULES
    }
    assert imported <= shipped, imported - shipped
    staged = layers.stage_shared_code(tmp_path) / "python"
    assert sorted(p.name for p in (staged / "sandbox_executor").iterdir()) == sorted(
        layers.SHARED_EXECUTOR_MODULES
    )
    assert (staged / "sandboxcp" / "domain" / "inputs.py").is_file()
    # The staged layer alone (no repository on the path) imports the contract.
    probe = "import sandbox_executor.contract as c; print(c.MAX_CODE_BYTES, c.__file__)"
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(staged)!r}); {probe}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert out.startswith(f"{contract.MAX_CODE_BYTES} {staged}")


# -- one mapping between the domain and the tables -------------------------------------------------------


def test_every_session_and_execution_field_is_a_table_attribute_of_the_same_name():
    from sandboxcp.adapters.dynamo.executions import EXECUTION_FIELDS
    from sandboxcp.adapters.dynamo.sessions import SESSION_FIELDS
    from sandboxcp.adapters.tables import ExecutionRecord, SessionRecord

    session_attributes = set(SessionRecord.get_attributes())
    assert set(SESSION_FIELDS) == set(models.Session.model_fields)
    assert set(SESSION_FIELDS) <= session_attributes, set(SESSION_FIELDS) - session_attributes
    # What the record adds: index keys, and storage-only attributes (the quota share it holds, the TTL).
    assert session_attributes - set(SESSION_FIELDS) == {
        "tenant_status",
        "active_status",
        "purge_pending",
        "purge_after",
        "quota_counted",
        "expires_at",
        "executions_inflight",
    }
    execution_attributes = set(ExecutionRecord.get_attributes())
    assert set(EXECUTION_FIELDS) == set(models.Execution.model_fields) - {"outcome"}
    assert set(EXECUTION_FIELDS) <= execution_attributes, set(EXECUTION_FIELDS) - execution_attributes
    assert execution_attributes - set(EXECUTION_FIELDS) == {
        "session_status",
        "inflight",
        "outcome",
        "outcome_key",
        "quota_counted",
        "session_slot",
        "expires_at",
        "artifacts",
    }
