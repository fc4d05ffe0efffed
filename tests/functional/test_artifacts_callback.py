"""FR-050: POST /internal/executions/{execution_id}/artifacts on moto with its sample event."""

from __future__ import annotations

import json
from typing import Any

from sandboxcp.domain import clock
from sandboxcp.domain.models import Execution, ExecutionMetrics, ExecutionOutcome
from sandboxcp.domain.states import ExecutionStatus
from sandboxcp.domain.workspace import Artifact
from tests.functional.conftest import (
    SAMPLE_EXECUTION,
    SAMPLE_SESSION,
    TENANT,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)


def _execution(deps, eid: str = SAMPLE_EXECUTION, session_id: str = SAMPLE_SESSION) -> None:
    deps.executions.create(
        Execution(
            execution_id=eid,
            session_id=session_id,
            tenant_id=TENANT,
            status=ExecutionStatus.PENDING,
            code="print(1)",
            language="python",
            timeout=30,
            created_at=clock.now(),
        )
    )


def _report(artifacts: Any, *, execution_id: str = SAMPLE_EXECUTION, raw: str | None = None) -> dict:
    event = with_path(sample_event("internal_execution_artifacts"), execution_id=execution_id)
    event["body"] = raw if raw is not None else json.dumps({"artifacts": artifacts})
    return invoke("internal_execution_artifacts", event)


def _result(deps) -> dict:
    event = with_path(sample_event("executions_result"), execution_id=SAMPLE_EXECUTION)
    resp = invoke("executions_result", event)
    assert resp["statusCode"] == 200, resp
    return body(resp)


def test_sample_event_records_the_artifacts(deps):
    seed_session(deps)
    _execution(deps)
    resp = invoke("internal_execution_artifacts", sample_event("internal_execution_artifacts"))
    assert resp["statusCode"] == 200
    out = body(resp)
    assert out["execution_id"] == SAMPLE_EXECUTION
    assert [a["path"] for a in out["artifacts"]] == ["output/result.csv", "plots/summary.png"]
    assert out["artifacts"][0]["checksum"].startswith("9f86d0")
    assert "checksum" not in out["artifacts"][1]


def test_reported_artifacts_merge_into_the_result_by_path(deps):
    seed_session(deps)
    _execution(deps)
    # Reported before the result, and again (a later report of a path replaces the earlier one).
    assert _report([{"path": "out/a.csv", "size": 1, "mime_type": "text/csv"}])["statusCode"] == 200
    again = _report([{"path": "./out//a.csv", "size": 7, "mime_type": "text/csv", "type": "output"}])
    assert [(a["path"], a["size"], a["type"]) for a in body(again)["artifacts"]] == [
        ("out/a.csv", 7, "output")
    ]
    outcome = ExecutionOutcome(
        status="success",
        exit_code=0,
        execution_time=0.1,
        metrics=ExecutionMetrics(duration_ms=100),
        artifacts=[
            Artifact(path="out/a.csv", size=1, mime_type="text/csv"),
            Artifact(path="log.txt", size=3, mime_type="text/plain", type="log"),
        ],
    )
    deps.executions.record_outcome(SAMPLE_EXECUTION, outcome, now=clock.now())
    # And after the result (the asynchronous upload finished later).
    big = {"path": "big.parquet", "size": 90_000_000, "mime_type": "application/octet-stream"}
    assert _report([big])["statusCode"] == 200
    shown = {a["path"]: (a["size"], a["type"]) for a in _result(deps)["artifacts"]}
    assert shown == {
        "out/a.csv": (7, "output"),
        "log.txt": (3, "log"),
        "big.parquet": (90_000_000, "artifact"),
    }


def test_another_sessions_token_is_forbidden_and_unknown_executions_404(deps):
    seed_session(deps)
    seed_session(deps, "sess_0000000000000002")
    _execution(deps, "exec_20260101_00000002", session_id="sess_0000000000000002")
    resp = _report(
        [{"path": "a", "size": 1, "mime_type": "text/plain"}], execution_id="exec_20260101_00000002"
    )
    assert resp["statusCode"] == 403 and body(resp)["error_code"] == "Sandbox.Forbidden"
    assert deps.executions.get("exec_20260101_00000002").outcome is None
    missing = _report(
        [{"path": "a", "size": 1, "mime_type": "text/plain"}], execution_id="exec_20260101_00000009"
    )
    assert missing["statusCode"] == 404 and body(missing)["error_code"] == "Sandbox.ExecutionNotFound"
    garbage_id = _report([], execution_id="not-an-id")
    assert garbage_id["statusCode"] == 404


def test_bad_reports_get_400_and_record_nothing(deps):
    seed_session(deps)
    _execution(deps)
    bad = [
        [{"path": "../etc/passwd", "size": 1, "mime_type": "text/plain"}],
        [{"path": "/abs", "size": 1, "mime_type": "text/plain"}],
        [{"path": "a", "size": -1, "mime_type": "text/plain"}],
        [{"path": "a", "size": "1", "mime_type": "text/plain"}],
        [{"path": "a", "size": 1, "mime_type": "text/plain", "type": "secret"}],
        [{"path": "a", "size": 1, "mime_type": "text/plain", "checksum": "not a checksum!"}],
        [{"path": "a", "size": 1}],
        [{"path": f"f{i}", "size": 1, "mime_type": "text/plain"} for i in range(201)],
        "not a list",
    ]
    for artifacts in bad:
        resp = _report(artifacts)
        assert resp["statusCode"] == 400, artifacts
        assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    for raw in ("{", '{"artifacts": [{"path": "a", "size": NaN, "mime_type": "x"}]}', "{}"):
        assert _report(None, raw=raw)["statusCode"] == 400, raw
    # 200 kept at most over all reports of an execution.
    assert (
        _report([{"path": f"f{i}", "size": 1, "mime_type": "x/y"} for i in range(150)])["statusCode"] == 200
    )
    over = _report([{"path": f"g{i}", "size": 1, "mime_type": "x/y"} for i in range(51)])
    assert over["statusCode"] == 400 and "at most 200" in body(over)["error_detail"]
    assert len(body(_report([]))["artifacts"]) == 150
